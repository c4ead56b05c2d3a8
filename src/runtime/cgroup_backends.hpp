// The two implementations of haco::cgroups::InstanceCgroup. Both place an
// instance at <caller's cgroup>/haco-fleet/<fleet>/<instance>.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "haco/cgroup.hpp"
#include "haco/unique_fd.hpp"
#include "runtime/cgroup_discovery.hpp"

namespace haco::cgroups {

// Throws haco::InputError unless `name` can be one directory's name.
void check_cgroup_name(const std::string& what, const std::string& name);
// /sys/fs/cgroup/haco-fleet/<fleet> (the v2_root layout).
std::string fleet_dir_v2_root(const std::string& fleet);
// Writes `value` to dir/key and reads it back; throws with both values when
// the kernel did not take it.
void write_setting(const std::string& dir, const CgroupSetting& setting);

// <hierarchy's own dir>/haco-fleet/<fleet>/<instance>; names are checked.
std::string instance_dir(const Hierarchy& h, const std::string& fleet, const std::string& instance);
std::string fleet_dir(const Hierarchy& h, const std::string& fleet);
// Creates haco-fleet/<fleet>/<instance> under the hierarchy (existing levels
// are kept); `prepare(parent, dir)` runs on each level just made.
std::string make_instance_dirs(const Hierarchy& h, const std::string& fleet, const std::string& instance,
                               const std::function<void(const std::string&, const std::string&)>& prepare);
// Polls cgroup.procs of `dir` until it is empty; false when `timeout` passed.
bool wait_until_empty(const std::string& dir, std::chrono::milliseconds timeout);
// rmdir that accepts an already missing directory.
void remove_dir(const std::string& dir);

// A cgroup in the unified (v2) tree. Settings are written in v2 form; with
// none it serves for membership, CLONE_INTO_CGROUP and cgroup.kill only
// (the hybrid case).
class V2Cgroup final : public InstanceCgroup {
 public:
  static std::unique_ptr<V2Cgroup> create(const Hierarchy& v2, const std::string& fleet,
                                          const std::string& instance, const std::vector<CgroupSetting>& v2_settings);
  // nullptr when the directory does not exist.
  static std::unique_ptr<V2Cgroup> open(const Hierarchy& v2, const std::string& fleet, const std::string& instance);
  // The v2 layouts: a leaf below a fleet's instances/, whose controllers the
  // fleet enabled when it started.
  static std::unique_ptr<V2Cgroup> create_leaf(const std::string& instances_dir, const std::string& instance,
                                               const std::vector<CgroupSetting>& v2_settings);
  static std::unique_ptr<V2Cgroup> open_leaf(const std::string& instances_dir, const std::string& instance);

  void add_process(pid_t pid) const override;
  int clone_into_fd() const override { return dir_fd_.get(); }
  void add_cloned_process(pid_t) const override {}
  std::vector<pid_t> processes() const override;
  void update_settings(const std::vector<CgroupSetting>& settings) const override;
  void kill_all(std::chrono::milliseconds timeout) const override;
  void remove() const override;
  std::vector<std::string> paths() const override { return {dir_}; }

 private:
  V2Cgroup(std::string dir, UniqueFd fd) : dir_(std::move(dir)), dir_fd_(std::move(fd)) {}
  std::string dir_;
  UniqueFd dir_fd_;
};

// One directory per v1 hierarchy used (those the settings need, plus pids
// and freezer to find and kill every process), and, when a v2 tree is
// mounted, a v2 cgroup for membership, CLONE_INTO_CGROUP and cgroup.kill.
class V1Cgroup final : public InstanceCgroup {
 public:
  static std::unique_ptr<V1Cgroup> create(const Hierarchies& h, const std::string& fleet, const std::string& instance,
                                          const std::vector<CgroupSetting>& v1_settings, bool use_v2_membership);
  static std::unique_ptr<V1Cgroup> open(const Hierarchies& h, const std::string& fleet, const std::string& instance);

  void add_process(pid_t pid) const override;
  int clone_into_fd() const override { return membership_ ? membership_->clone_into_fd() : -1; }
  void add_cloned_process(pid_t pid) const override;
  std::vector<pid_t> processes() const override;
  void update_settings(const std::vector<CgroupSetting>& settings) const override;
  void kill_all(std::chrono::milliseconds timeout) const override;
  void remove() const override;
  std::vector<std::string> paths() const override;

  // The v1 part only: freeze, SIGKILL every pid, thaw, wait until empty.
  void freeze_and_kill(std::chrono::milliseconds timeout) const;

 private:
  struct Dir {
    std::string path;
    std::vector<std::string> controllers;
  };
  V1Cgroup(std::vector<Dir> dirs, std::unique_ptr<V2Cgroup> membership)
      : dirs_(std::move(dirs)), membership_(std::move(membership)) {}
  const Dir* dir_with(std::string_view controller) const;

  std::vector<Dir> dirs_;
  std::unique_ptr<V2Cgroup> membership_;
};

}  // namespace haco::cgroups
