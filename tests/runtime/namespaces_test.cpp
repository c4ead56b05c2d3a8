// The optional namespaces (net, cgroup) and CLONE_PARENT, on real containers.
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

using NamespacesTest = RootTest;

TEST_F(NamespacesTest, NetAndCgroupNamespacesWithARealSysfs) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  const char* fleet = "haco-rt-ns";
  CgroupGuard cg(cgroups::InstanceCgroup::create(test_fleet_cgroup(fleet), "netns", {{"pids.max", "32"}}), test_fleet_cgroup(fleet));
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-netns", rootfs, base,
                   "echo net=$(ls /sys/class/net | tr '\\n' ' '); ip link show lo; "
                   "echo cgroups; cat /proc/self/cgroup; echo END; exec sleep 60");
  c.namespaces.push_back(Namespace::net);
  c.namespaces.push_back(Namespace::cgroup);
  c.independent_mounts.push_back(IndependentMount::sysfs);
  req.log_path = (rootfs.dir() / "init.log").string();
  req.cgroup = cg.get();
  Container container(req);
  std::string log = wait_for_text(req.log_path, "END");
  ASSERT_NE(log.find("END"), std::string::npos) << log;

  // Its own sysfs shows its own interfaces: loopback only, and up.
  EXPECT_NE(log.find("net=lo\n"), std::string::npos) << log;
  EXPECT_NE(log.find("<LOOPBACK,UP,LOWER_UP>"), std::string::npos) << log;
  // The cgroup namespace is rooted at the instance's cgroups, v1 and v2 alike.
  std::string cgroups = log.substr(log.find("cgroups\n") + 8);
  bool v1 = haco::cgroups::detect_layout() == haco::cgroups::Layout::v1_hybrid;
  EXPECT_NE(cgroups.find(v1 ? ":pids:/\n" : "0::/\n"), std::string::npos) << cgroups;
  EXPECT_EQ(cgroups.find("haco-fleet"), std::string::npos) << cgroups;
  char self[256]{}, other[256]{};
  ::readlink("/proc/self/ns/net", self, sizeof self - 1);
  ::readlink(fmt::format("/proc/{}/ns/net", container.pid()).c_str(), other, sizeof other - 1);
  EXPECT_STRNE(self, other);
}

// Without a user namespace the container is real root: it gets a real sysfs
// (read-only), never the host's devtmpfs, and it loses the host-wide
// capabilities.
TEST_F(NamespacesTest, WithoutAUserNamespaceTheRealFilesystemsAreMounted) {
  TempRootfs rootfs(0);
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-nouser", rootfs, 0, "echo uid=$(id -u); echo END; exec sleep 60");
  c.namespaces = {Namespace::pid, Namespace::mount, Namespace::uts};
  c.uid_map.clear();
  c.gid_map.clear();
  c.independent_mounts.push_back(IndependentMount::sysfs);
  req.log_path = (rootfs.dir() / "init.log").string();
  Container container(req);
  std::string log = wait_for_text(req.log_path, "END");
  ASSERT_NE(log.find("END"), std::string::npos) << log;
  EXPECT_NE(log.find("uid=0\n"), std::string::npos) << log;
  std::string mountinfo = read_file(fmt::format("/proc/{}/mountinfo", container.pid()));
  EXPECT_NE(mountinfo.find(" /dev rw,nosuid,nodev,noexec,relatime - tmpfs "), std::string::npos) << mountinfo;
  EXPECT_EQ(mountinfo.find(" /dev rw,nosuid,noexec,relatime - devtmpfs "), std::string::npos) << mountinfo;
  EXPECT_NE(mountinfo.find(" /sys ro,"), std::string::npos) << mountinfo;
  // Real root, but with the default bounding set only: no CAP_SYS_ADMIN, no
  // capability whose effect is host-wide.
  std::uint64_t bounding = std::stoull(status_field(container.pid(), "CapBnd"), nullptr, 16);
  EXPECT_EQ(bounding, default_capabilities());
  for (int cap : {CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYSLOG})
    EXPECT_EQ(bounding & (1ull << cap), 0u) << "capability " << cap;
  EXPECT_EQ(status_field(container.pid(), "Seccomp"), "2");
  char self[256]{}, other[256]{};
  ::readlink("/proc/self/ns/user", self, sizeof self - 1);
  ::readlink(fmt::format("/proc/{}/ns/user", container.pid()).c_str(), other, sizeof other - 1);
  EXPECT_STREQ(self, other);
}

// The fleet's spawners clone with CLONE_PARENT: the container is a child of
// the spawner's parent, which reaps it.
TEST_F(NamespacesTest, CloneParentMakesTheCallersParentReapTheContainer) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-parent", rootfs, base, "exit 7");
  req.log_path = (rootfs.dir() / "init.log").string();
  req.clone_parent = true;
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t spawner = ::fork();
  ASSERT_GE(spawner, 0);
  if (spawner == 0) {
    ::close(report[0]);
    pid_t pid = -1;
    try {
      pid = runtime::launch(req).pid;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "launch with CLONE_PARENT: %s\n", e.what());
    }
    ::write(report[1], &pid, sizeof pid);
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t container = -1;
  ASSERT_EQ(::read(report[0], &container, sizeof container), static_cast<ssize_t>(sizeof container));
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(spawner, &status, 0), spawner);
  ASSERT_GT(container, 0);
  ASSERT_EQ(::waitpid(container, &status, 0), container);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

}  // namespace
}  // namespace haco::testing
