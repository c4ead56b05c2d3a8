// The container's mounts, read from /proc/PID/mountinfo on the host.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

using MountsTest = RootTest;

TEST_F(MountsTest, TheTemplatesMountsArePresent) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-mounts", rootfs, base,
                   "echo null=$(wc -c < /dev/null); ls -l /dev/pts/ptmx; touch /tmp/x && echo tmp-ok; "
                   "echo resolv; echo w > /etc/resolv.conf || echo resolv-ro; echo END; exec sleep 60");
  c.mounts = {{"tmpfs", "/tmp", "tmpfs", "size=16m,mode=1777", false}};
  c.network_etc_host_root = "/etc";
  c.independent_mounts = {IndependentMount::shm, IndependentMount::procfs, IndependentMount::sysfs,
                          IndependentMount::devtmpfs, IndependentMount::devpts};
  req.log_path = (rootfs.dir() / "init.log").string();
  Container container(req);
  std::string log = wait_for_text(req.log_path, "END");
  ASSERT_NE(log.find("END"), std::string::npos) << log;

  auto mounts = mounts_of(container.pid());
  auto expect_mount = [&](const std::string& point, const std::string& fstype) {
    const MountEntry* m = find_mount(mounts, point);
    ASSERT_NE(m, nullptr) << point << " is not mounted";
    EXPECT_EQ(m->fstype, fstype) << point;
  };
  expect_mount("/", "ext4");
  expect_mount("/tmp", "tmpfs");
  expect_mount("/proc", "proc");
  expect_mount("/dev", "tmpfs");
  expect_mount("/dev/pts", "devpts");
  expect_mount("/dev/shm", "tmpfs");
  expect_mount("/dev/null", "devtmpfs");
  expect_mount("/dev/urandom", "devtmpfs");
  // In a user namespace without its own network namespace: the host's /sys, read-only.
  const MountEntry* sys = find_mount(mounts, "/sys");
  ASSERT_NE(sys, nullptr);
  EXPECT_EQ(sys->fstype, "sysfs");
  EXPECT_EQ(sys->options.rfind("ro", 0), 0u) << sys->options;
  const MountEntry* resolv = find_mount(mounts, "/etc/resolv.conf");
  ASSERT_NE(resolv, nullptr);
  EXPECT_EQ(resolv->options.rfind("ro", 0), 0u) << resolv->options;
  EXPECT_NE(find_mount(mounts, "/etc/hosts"), nullptr);
  // Nothing of the host's tree is left beside the rootfs.
  for (const auto& m : mounts) EXPECT_EQ(m.mount_point.rfind(rootfs.path().string(), 0), std::string::npos);

  EXPECT_NE(log.find("null=0"), std::string::npos) << log;
  EXPECT_NE(log.find("tmp-ok"), std::string::npos) << log;
  EXPECT_NE(log.find("resolv-ro"), std::string::npos) << log;
  EXPECT_NE(log.find("/dev/pts/ptmx"), std::string::npos) << log;
}

TEST_F(MountsTest, ASymlinkedTargetIsResolvedInsideTheRootfs) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  // A rootfs reused from a previous container may hold anything: /tmp -> /etc
  // must mean the rootfs's /etc, never the host's.
  std::filesystem::remove(rootfs.path() / "tmp");
  std::filesystem::create_symlink("/etc", rootfs.path() / "tmp");
  ASSERT_EQ(::lchown((rootfs.path() / "tmp").c_str(), base, base), 0);
  std::filesystem::create_directory_symlink("../../../../../../etc", rootfs.path() / "escape");
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-symlink", rootfs, base, "echo etc=$(ls /etc | wc -l); echo END; exec sleep 60");
  c.mounts = {{"tmpfs", "/tmp", "tmpfs", "", false}, {"tmpfs", "/escape/haco-escape", "tmpfs", "", false}};
  req.log_path = (rootfs.dir() / "init.log").string();
  Container container(req);
  std::string log = wait_for_text(req.log_path, "END");
  ASSERT_NE(log.find("END"), std::string::npos) << log;

  auto mounts = mounts_of(container.pid());
  // Both mounts landed on the rootfs's /etc (and a directory created in it).
  const MountEntry* etc = find_mount(mounts, "/etc");
  ASSERT_NE(etc, nullptr);
  EXPECT_EQ(etc->fstype, "tmpfs");
  EXPECT_NE(find_mount(mounts, "/etc/haco-escape"), nullptr);
  EXPECT_EQ(find_mount(mounts, "/tmp"), nullptr);
  EXPECT_NE(log.find("etc=1\n"), std::string::npos) << log;  // only haco-escape
  // The host's /etc gained nothing.
  struct stat st {};
  EXPECT_NE(::stat("/etc/haco-escape", &st), 0);
}

// The rootfs engine's overlay strategy hands over a rootfs that is already a
// mount point: it is pivoted into as it is, without a second bind.
TEST_F(MountsTest, ARootfsThatIsAlreadyAMountPointIsUsedAsIs) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  const std::string path = rootfs.path().string();
  ASSERT_EQ(::mount("tmpfs", path.c_str(), "tmpfs", 0, "mode=0755"), 0);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{path};
  ASSERT_EQ(std::system(fmt::format("tar -xzf {} -C {} && chown -R -h {}:{} {}", busybox_image(), path, base, base,
                                    path).c_str()),
            0);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec("haco-rt-mountpoint", rootfs, base, "echo END; exec sleep 60");
  req.log_path = (rootfs.dir() / "init.log").string();
  Container container(req);
  std::string log = wait_for_text(req.log_path, "END");
  ASSERT_NE(log.find("END"), std::string::npos) << log;
  auto mounts = mounts_of(container.pid());
  ASSERT_FALSE(mounts.empty());
  EXPECT_EQ(mounts.front().mount_point, "/");
  EXPECT_EQ(mounts.front().fstype, "tmpfs");
  int roots = 0;
  for (const auto& m : mounts) roots += m.mount_point == "/";
  EXPECT_EQ(roots, 1);
}

}  // namespace
}  // namespace haco::testing
