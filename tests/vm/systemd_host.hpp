// What the tests of a host with systemd as PID 1 and only the cgroup v2
// hierarchy (the hosts operators run; the Debian 12 guest of scripts/vm/)
// read from the kernel and from systemd, and the fixture that skips them
// anywhere else.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace haco::vm {

// Empty when this is such a host; otherwise a sentence saying what differs.
std::string systemd_cgroup2_mismatch();

// Skips (or, in the guest of scripts/vm/run-in-guest.sh, fails) unless run as
// root on a host with systemd as PID 1 and only the cgroup v2 hierarchy.
class SystemdCgroup2Test : public ::testing::Test {
 protected:
  void SetUp() override;
};

using testing::read_text_file;
std::string trim(const std::string& text);

// The cgroup v2 path of `pid` ("/system.slice/x.service"), from the "0::"
// line of /proc/PID/cgroup; "" when the process is gone.
std::string cgroup_of(pid_t pid);
// The directory of a cgroup v2 path under /sys/fs/cgroup.
std::filesystem::path cgroup_dir(const std::string& cgroup);
std::vector<pid_t> cgroup_procs(const std::filesystem::path& dir);
// Every cgroup directory whose path below /sys/fs/cgroup contains `text`,
// deepest first.
std::vector<std::filesystem::path> cgroups_containing(const std::string& text);

// What a cgroup looked like (its descendants and cgroup.subtree_control),
// to see what a command changed in it and to put it back: a fleet must not
// touch the cgroup of the process that ran `up`.
class CgroupSnapshot {
 public:
  explicit CgroupSnapshot(std::filesystem::path dir);
  // One sentence per change since the snapshot; empty when there is none.
  std::vector<std::string> changes() const;
  // Kills what is in cgroups made since, removes them, and disables the
  // controllers enabled since.
  void restore() const;

 private:
  std::vector<std::filesystem::path> descendants() const;
  std::vector<std::string> subtree_control() const;

  std::filesystem::path dir_;
  std::vector<std::filesystem::path> descendants_;
  std::vector<std::string> subtree_control_;
};

// `systemctl show -p PROPERTY --value UNIT`.
std::string unit_property(const std::string& unit, const std::string& property);

// Lines of /proc/self/mountinfo mentioning `text`.
std::vector<std::string> mounts_mentioning(const std::string& text);
// Processes whose real uid lies in [first, last].
std::vector<pid_t> processes_with_uid_in(uid_t first, uid_t last);

}  // namespace haco::vm
