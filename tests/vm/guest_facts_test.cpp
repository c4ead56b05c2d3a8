// What haco-fleet relies on in a host with systemd as PID 1 and only the
// cgroup v2 hierarchy, checked where it holds: the Debian 12 guest.
#include <linux/magic.h>
#include <sys/vfs.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "haco/mountinfo.hpp"
#include "test_support.hpp"
#include "vm/systemd_host.hpp"

namespace haco::vm {
namespace {

namespace fs = std::filesystem;
using GuestFacts = SystemdCgroup2Test;

constexpr long kV9fsMagic = 0x01021997;

TEST_F(GuestFacts, OnlyTheCgroupV2HierarchyIsMountedAtSysFsCgroup) {
  struct statfs st {};
  ASSERT_EQ(::statfs("/sys/fs/cgroup", &st), 0);
  EXPECT_EQ(st.f_type, CGROUP2_SUPER_MAGIC) << "/sys/fs/cgroup is not cgroup2fs";
  for (const MountInfo& m : read_mountinfo())
    EXPECT_NE(m.fstype, "cgroup") << "a cgroup v1 hierarchy is mounted at " << m.mount_point;
  EXPECT_EQ(trim(read_text_file("/proc/self/cgroup")).find('\n'), std::string::npos)
      << "a process is in more than the one v2 hierarchy:\n" << read_text_file("/proc/self/cgroup");
}

TEST_F(GuestFacts, SystemdIsPid1) {
  EXPECT_EQ(trim(read_text_file("/proc/1/comm")), "systemd");
  auto r = testing::run_command("systemctl --version");
  ASSERT_EQ(r.status, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(^systemd (\d+))"))) << r.output;
  RecordProperty("systemd", m[1].str());
  EXPECT_GE(std::stoi(m[1].str()), 252) << "older than Debian 12's systemd";
  EXPECT_EQ(trim(testing::run_command("systemctl is-system-running").output), "running")
      << testing::run_command("systemctl --failed --no-legend").output;
}

TEST_F(GuestFacts, AServiceWithDelegateYesGetsTheCpuMemoryPidsAndIoControllers) {
  auto r = testing::run_command(
      "systemd-run --wait --pipe --quiet -p Delegate=yes "
      "sh -c 'cat /sys/fs/cgroup$(sed -n \"s/^0:://p\" /proc/self/cgroup)/cgroup.controllers'");
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream words(r.output);
  std::vector<std::string> controllers;
  for (std::string c; words >> c;) controllers.push_back(c);
  for (const char* wanted : {"cpu", "memory", "pids", "io"})
    EXPECT_NE(std::find(controllers.begin(), controllers.end(), wanted), controllers.end())
        << wanted << " is not delegated; cgroup.controllers: " << r.output;
}

TEST_F(GuestFacts, SuOpensALoginSessionThroughLogind) {
  auto r = testing::run_command("su -l root -c 'echo session=$XDG_SESSION_ID; sed -n \"s/^0:://p\" /proc/self/cgroup'");
  ASSERT_EQ(r.status, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(session=(\w+)\n/user\.slice/user-0\.slice/session-(\w+)\.scope)")))
      << "su -l did not run in a logind session scope:\n" << r.output;
  EXPECT_EQ(m[1].str(), m[2].str());
}

// Container trees cannot live on the 9p share: overlayfs refuses it as a
// layer and it has no idmapped mounts.
TEST_F(GuestFacts, TemporaryTreesAndTheDataRootAreOnTheGuestsOwnDisk) {
  std::error_code ec;
  fs::create_directories("/var/lib/haco-fleet", ec);
  for (const fs::path& dir : {fs::temp_directory_path(), fs::path("/var/tmp"), fs::path("/var/lib/haco-fleet")}) {
    struct statfs st {};
    ASSERT_EQ(::statfs(dir.c_str(), &st), 0) << dir;
    EXPECT_NE(st.f_type, kV9fsMagic) << dir << " is on the 9p share";
    EXPECT_TRUE(st.f_type == EXT4_SUPER_MAGIC || st.f_type == TMPFS_MAGIC)
        << dir << " is on file system type " << fmt::format("{:#x}", st.f_type);
  }
}

}  // namespace
}  // namespace haco::vm
