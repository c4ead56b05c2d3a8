// Containers started for real from the busybox image, checked from the host
// through what the kernel reports.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

using LaunchTest = RootTest;

TEST_F(LaunchTest, InitRunsAsMappedRootInItsOwnNamespaces) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec(
      "haco-rt-ids", rootfs, base, "echo host=$(uname -n); echo procs=$(ls /proc | grep '^[0-9]' | tr '\\n' ' '); "
                                   "echo id=$(id -u):$(id -g); echo END; exec sleep 60");
  req.log_path = (rootfs.dir() / "init.log").string();
  Container c(req);

  std::istringstream uid_map(read_file(fmt::format("/proc/{}/uid_map", c.pid())));
  std::uint32_t inside = 1, outside = 0, count = 0;
  uid_map >> inside >> outside >> count;
  EXPECT_EQ(inside, 0u);
  EXPECT_EQ(outside, base);
  EXPECT_EQ(count, 100u);
  std::istringstream gid_map(read_file(fmt::format("/proc/{}/gid_map", c.pid())));
  gid_map >> inside >> outside >> count;
  EXPECT_EQ(inside, 0u);
  EXPECT_EQ(outside, base);
  EXPECT_EQ(count, 100u);

  std::string log = wait_for_text(req.log_path, "END");
  ASSERT_NE(log.find("END"), std::string::npos) << log;
  // Outside, the init runs as the range's base; inside it is root.
  EXPECT_EQ(status_field(c.pid(), "Uid"), fmt::format("{0}\t{0}\t{0}\t{0}", base));
  EXPECT_EQ(status_field(c.pid(), "Gid"), fmt::format("{0}\t{0}\t{0}\t{0}", base));
  EXPECT_NE(log.find("id=0:0"), std::string::npos) << log;
  // Root there holds the default capabilities (security_test.cpp checks every set).
  EXPECT_EQ(std::stoull(status_field(c.pid(), "CapEff"), nullptr, 16), default_capabilities());
  // pid 1 of its own pid namespace.
  EXPECT_EQ(status_field(c.pid(), "NSpid"), fmt::format("{}\t1", c.pid()));
  EXPECT_NE(log.find("host=haco-rt-ids\n"), std::string::npos) << log;
  // It sees only its own processes: the shell (1) and the few it forked.
  std::istringstream procs(log.substr(log.find("procs=") + 6));
  std::string line;
  std::getline(procs, line);
  std::istringstream pids(line);
  int count_seen = 0;
  for (int pid; pids >> pid; ++count_seen) EXPECT_LT(pid, 20) << line;
  EXPECT_GE(count_seen, 1);
  EXPECT_LE(count_seen, 6) << line;
  // Namespaces differ from the test process's own.
  for (const char* ns : {"user", "pid", "ipc", "uts", "mnt"}) {
    char self[256]{}, other[256]{};
    ::readlink(fmt::format("/proc/self/ns/{}", ns).c_str(), self, sizeof self - 1);
    ::readlink(fmt::format("/proc/{}/ns/{}", c.pid(), ns).c_str(), other, sizeof other - 1);
    EXPECT_STRNE(self, other) << ns;
  }
}

TEST_F(LaunchTest, ExecFailureArrivesAsTheChildsError) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-noexec", rootfs, base, "");
  req.instance.container.command = {"/nonexistent"};
  req.log_path = (rootfs.dir() / "init.log").string();
  try {
    Container c(req);
    FAIL() << "launch of /nonexistent succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exec /nonexistent: No such file or directory"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("starting container haco-rt-noexec"), std::string::npos) << e.what();
    EXPECT_EQ(e.sys_errno(), ENOENT);
  }
  // The failed child was reaped: the test process has no child left.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(LaunchTest, AMapTheKernelRefusesFailsTheLaunchAndReapsTheChild) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-badmap", rootfs, base, "exec sleep 60");
  // Overlapping ranges inside: the kernel refuses the whole map.
  req.instance.container.uid_map = {{0, base, 100}, {50, base + 1000, 100}};
  req.log_path = (rootfs.dir() / "init.log").string();
  try {
    Container c(req);
    FAIL() << "an overlapping uid map was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("writing the uid/gid maps"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("uid_map: Invalid argument"), std::string::npos) << e.what();
  }
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(LaunchTest, CommandIsLookedUpInTheContainersPath) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-path", rootfs, base, "");
  req.instance.container.command = {"env"};
  req.instance.container.environment = {"GREETING=hello"};
  req.instance.container.workdir = "/www";
  req.log_path = (rootfs.dir() / "init.log").string();
  Container c(req);
  EXPECT_NE(c.wait_exit(std::chrono::seconds(10)), -1);
  std::string log = read_file(req.log_path);
  EXPECT_NE(log.find("GREETING=hello\n"), std::string::npos) << log;
  EXPECT_NE(log.find("PATH=/usr/local/sbin:"), std::string::npos) << log;
}

TEST_F(LaunchTest, LaunchesLeaveNoDescriptorBehind) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-fds", rootfs, base, "ls -l /proc/self/fd");
  req.log_path = (rootfs.dir() / "init.log").string();
  auto open_fds = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator{});
  };
  // The first launch of a process makes the base the staging namespaces
  // are copied from, kept for the process's life (its /proc and namespace
  // descriptors): counted from after it.
  {
    Container first(req);
    EXPECT_NE(first.wait_exit(std::chrono::seconds(10)), -1);
  }
  auto before = open_fds();
  for (int i = 0; i < 5; ++i) {
    Container c(req);
    EXPECT_NE(c.wait_exit(std::chrono::seconds(10)), -1);
  }
  EXPECT_EQ(open_fds(), before);
  // The init saw its stdio and nothing else of the launcher's descriptors.
  std::string log = read_file(req.log_path);
  EXPECT_EQ(log.find(" 3 -> "), std::string::npos) << log;
  EXPECT_NE(log.find(" 2 -> "), std::string::npos) << log;
}

TEST_F(LaunchTest, AFailedMountIsReportedWithItsStep) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-badmount", rootfs, base, "exec sleep 60");
  req.instance.container.mounts = {{"tmpfs", "/tmp", "tmpfs", "size=nonsense", false}};
  req.log_path = (rootfs.dir() / "init.log").string();
  try {
    Container c(req);
    FAIL() << "a bad tmpfs option was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mounting"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fsconfig tmpfs (size=nonsense)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace haco::testing
