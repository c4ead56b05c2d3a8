// Cgroups behind one interface: a v2 backend when its controllers are
// available, a v1 backend otherwise (one directory per mounted controller).
// Mount points and the caller's own cgroup come from /proc/self/mountinfo and
// /proc/self/cgroup. haconiwa's v1 keys and v2 keys go through one table.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "haco/spec.hpp"

namespace haco::cgroups {

// Throws haco::Error naming the first unknown key or malformed value. Runs at
// expand time, before anything starts.
void validate_settings(const std::vector<CgroupSetting>& settings);

// The same settings written for v2 ("cpu.cfs_quota_us" + "cpu.cfs_period_us"
// -> "cpu.max", "memory.limit_in_bytes" -> "memory.max", ...) or for v1.
std::vector<CgroupSetting> translate_to_v2(const std::vector<CgroupSetting>& settings);
std::vector<CgroupSetting> translate_to_v1(const std::vector<CgroupSetting>& settings);

class InstanceCgroup {
 public:
  // Creates the instance's cgroup (<caller's cgroup>/haco-fleet/<fleet>/<instance>
  // in each hierarchy it uses) and writes the settings.
  static std::unique_ptr<InstanceCgroup> create(const std::string& fleet, const std::string& instance,
                                                const std::vector<CgroupSetting>& settings);
  // Finds an existing instance cgroup (for `down` after the supervisor died);
  // nullptr when there is none.
  static std::unique_ptr<InstanceCgroup> open(const std::string& fleet, const std::string& instance);

  virtual ~InstanceCgroup() = default;
  virtual void add_process(pid_t pid) const = 0;
  // Directory fd for CLONE_INTO_CGROUP (the v2 cgroup, also the membership
  // cgroup of a v1 backend on a hybrid host), or -1 when there is none.
  virtual int clone_into_fd() const = 0;
  // For a process cloned with CLONE_INTO_CGROUP(clone_into_fd()): joins the
  // hierarchies that clone did not (the v1 ones).
  virtual void add_cloned_process(pid_t pid) const = 0;
  virtual std::vector<pid_t> processes() const = 0;
  // SIGKILL to every process (cgroup.kill on v2, freeze + kill + thaw on v1),
  // then waits until the cgroup is empty or the timeout passes.
  virtual void kill_all(std::chrono::milliseconds timeout) const = 0;
  // Removes the directories (the cgroup must be empty).
  virtual void remove() const = 0;
  // Every directory this cgroup lives in, for diagnostics and tests.
  virtual std::vector<std::string> paths() const = 0;
};

// Removes <caller's cgroup>/haco-fleet/<fleet> in every hierarchy once it is
// empty of instances.
void remove_fleet_cgroups(const std::string& fleet);

}  // namespace haco::cgroups
