// The container's mounts, read from /proc/PID/mountinfo on the host.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
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

// The ids a file owned by an unmapped host id shows inside a user namespace.
std::uint32_t overflow_id(const char* which) {
  return static_cast<std::uint32_t>(std::stoul(read_file(fmt::format("/proc/sys/kernel/overflow{}", which))));
}

// What `stat -c '%n %F %a %u %g %t:%T %N'` prints inside the container for
// its /dev: the host's six harmless devices (their host owner unmapped), the
// symlinks, pts and shm, owned by the container's root.
std::string expected_dev_listing() {
  std::string out;
  auto device = [&](const char* name) {
    struct stat st {};
    if (::stat(fmt::format("/dev/{}", name).c_str(), &st) != 0) throw std::runtime_error(name);
    out += fmt::format("/dev/{} character special file {:o} {} {} {:x}:{:x} /dev/{}\n", name, st.st_mode & 07777,
                       overflow_id("uid"), overflow_id("gid"), major(st.st_rdev), minor(st.st_rdev), name);
  };
  auto symlink = [&](const char* name, const char* target) {
    out += fmt::format("/dev/{} symbolic link 777 0 0 0:0 '/dev/{}' -> '{}'\n", name, name, target);
  };
  symlink("fd", "/proc/self/fd");
  device("full");
  device("null");
  symlink("ptmx", "pts/ptmx");
  out += "/dev/pts directory 755 0 0 0:0 /dev/pts\n";
  device("random");
  out += "/dev/shm directory 1777 0 0 0:0 /dev/shm\n";
  symlink("stderr", "/proc/self/fd/2");
  symlink("stdin", "/proc/self/fd/0");
  symlink("stdout", "/proc/self/fd/1");
  device("tty");
  device("urandom");
  device("zero");
  return out;
}

// Every container gets a /dev of its own with the same content and flags
// (the device binds and the masks are cloned from mounts the launcher makes
// once): two containers of one launcher both show the expected listing,
// and what one writes in its /dev the other does not see.
TEST_F(MountsTest, EveryContainerGetsTheSameDevOfItsOwn) {
  const std::string expected = expected_dev_listing();
  struct Started {
    std::uint32_t base;
    std::unique_ptr<TempRootfs> rootfs;
    runtime::LaunchRequest req;
    std::unique_ptr<Container> container;
  };
  std::vector<Started> started(2);
  for (std::size_t i = 0; i < started.size(); ++i) {
    Started& s = started[i];
    s.base = test_id_base();
    s.rootfs = std::make_unique<TempRootfs>(s.base);
    s.req.instance.container = busybox_spec(
        fmt::format("haco-rt-dev{}", i), *s.rootfs, s.base,
        fmt::format("stat -c '%n %F %a %u %g %t:%T %N' /dev/*; echo LISTED; echo {} > /dev/mine-{} && echo END; "
                    "exec sleep 60",
                    i, i));
    ContainerSpec& c = s.req.instance.container;
    c.independent_mounts = {IndependentMount::procfs, IndependentMount::sysfs, IndependentMount::devtmpfs,
                            IndependentMount::devpts, IndependentMount::shm};
    s.req.log_path = (s.rootfs->dir() / "init.log").string();
    s.container = std::make_unique<Container>(s.req);
  }
  for (const Started& s : started) {
    std::string log = wait_for_text(s.req.log_path, "END");
    ASSERT_NE(log.find("END"), std::string::npos) << log;
    EXPECT_EQ(log.substr(0, log.find("LISTED\n")), expected);
  }
  for (std::size_t i = 0; i < started.size(); ++i) {
    const Started& s = started[i];
    // Each sees the file it wrote in its /dev, not the other's.
    const std::string dev_dir = fmt::format("/proc/{}/root/dev", s.container->pid());
    EXPECT_TRUE(std::filesystem::exists(fmt::format("{}/mine-{}", dev_dir, i)));
    EXPECT_FALSE(std::filesystem::exists(fmt::format("{}/mine-{}", dev_dir, 1 - i)));

    auto mounts = mounts_of(s.container->pid());
    const MountEntry* dev = find_mount(mounts, "/dev");
    ASSERT_NE(dev, nullptr);
    EXPECT_EQ(dev->fstype, "tmpfs");
    EXPECT_EQ(dev->options, "rw,nosuid,nodev,noexec,relatime");
    EXPECT_EQ(dev->super_options, fmt::format("rw,size=64k,nr_inodes=1024,mode=755,uid={},gid={}", s.base, s.base));
    for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
      const MountEntry* m = find_mount(mounts, fmt::format("/dev/{}", name));
      ASSERT_NE(m, nullptr) << name;
      EXPECT_EQ(m->fstype, "devtmpfs") << name;
      const std::string flags = "," + m->options + ",";
      EXPECT_NE(flags.find(",nosuid,"), std::string::npos) << name << ": " << m->options;
      EXPECT_NE(flags.find(",noexec,"), std::string::npos) << name << ": " << m->options;
      EXPECT_EQ(flags.find(",nodev,"), std::string::npos) << name << ": " << m->options;
    }
    // The masks, cloned as well: read-only wherever they are.
    for (const char* masked : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"}) {
      if (::access(masked, F_OK) != 0) continue;
      const MountEntry* m = find_mount(mounts, masked);
      ASSERT_NE(m, nullptr) << masked;
      EXPECT_EQ(m->options.rfind("ro,", 0), 0u) << masked << ": " << m->options;
      EXPECT_NE(m->options.find("nosuid"), std::string::npos) << masked << ": " << m->options;
    }
  }
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
