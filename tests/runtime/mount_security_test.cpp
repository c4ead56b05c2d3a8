// What a container can do to its mounts and through them, tried from inside
// with busybox and checked from the host (docs/security.md): device nodes,
// private rootfs directories, mounts that stay read-only, /proc masks, tmpfs
// sizes, /dev without a user namespace.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "haco/rootfs.hpp"
#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

using MountSecurityTest = RootTest;

// The container's log once it printed END (the init then sleeps).
std::string run_until_end(runtime::LaunchRequest& req, const TempRootfs& rootfs, std::unique_ptr<Container>& out) {
  req.log_path = (rootfs.dir() / "init.log").string();
  out = std::make_unique<Container>(req);
  return wait_for_text(req.log_path, "END");
}

void make_node(const std::filesystem::path& path, mode_t mode, dev_t dev, std::uint32_t owner) {
  ASSERT_EQ(::mknod(path.c_str(), mode, dev), 0) << path;
  ASSERT_EQ(::chown(path.c_str(), owner, owner), 0) << path;
}

// A device node that reached a rootfs (a bootstrap's mknod, a reused tree)
// cannot be opened, owned by the container's root or not: the root is nodev,
// and the container cannot take nodev off.
TEST_F(MountSecurityTest, ADeviceNodeInTheRootfsCannotBeOpened) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  std::filesystem::create_directory(rootfs.path() / "opt");
  struct stat host_root {};
  ASSERT_EQ(::stat("/", &host_root), 0);
  // The host's own disk, as `mknod opt/disk b MAJ MIN` in an image would make it.
  make_node(rootfs.path() / "opt/disk", S_IFBLK | 0660, host_root.st_dev, base);
  make_node(rootfs.path() / "opt/null", S_IFCHR | 0666, makedev(1, 3), base);
  // The host's kernel log: opened for writing (nothing is written) it would
  // let the container inject lines into the host's log.
  make_node(rootfs.path() / "opt/kmsg", S_IFCHR | 0600, makedev(1, 11), base);
  runtime::LaunchRequest req;
  req.instance.container = busybox_spec(
      "haco-rt-nodev", rootfs, base,
      "dd if=/opt/disk of=/dev/null bs=512 count=1 2>/tmp/err && echo disk=opened || echo \"disk=refused $(cat /tmp/err)\"; "
      "echo x 2>/tmp/err > /opt/null && echo null-copy=opened || echo \"null-copy=refused $(cat /tmp/err)\"; "
      "( : > /opt/kmsg ) 2>/tmp/err && echo kmsg=opened || echo \"kmsg=refused $(cat /tmp/err)\"; "
      "echo x > /dev/null && echo dev-null=works; "
      "mount -o remount,bind,dev / 2>/dev/null && echo root-dev=allowed || echo root-dev=locked; "
      "echo END; exec sleep 60");
  std::unique_ptr<Container> c;
  std::string log = run_until_end(req, rootfs, c);
  ASSERT_NE(log.find("END"), std::string::npos) << log;
  EXPECT_NE(log.find("disk=refused"), std::string::npos) << log;
  EXPECT_NE(log.find("null-copy=refused"), std::string::npos) << log;
  EXPECT_NE(log.find("kmsg=refused"), std::string::npos) << log;
  EXPECT_NE(log.find("Permission denied"), std::string::npos) << "nodev refuses with EACCES: " << log;
  EXPECT_NE(log.find("dev-null=works"), std::string::npos) << log;
  EXPECT_NE(log.find("root-dev=locked"), std::string::npos) << log;
  auto mounts = mounts_of(c->pid());
  const MountEntry* root = find_mount(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_NE(root->options.find("nodev"), std::string::npos) << root->options;
}

// The rootfs and a bind mount's source under 0700 directories that the
// container's ids could not walk: the host side opens them.
TEST_F(MountSecurityTest, ARootfsAndABindSourceUnderPrivateDirectoriesWork) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  struct stat st {};
  ASSERT_EQ(::stat(rootfs.dir().c_str(), &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 0700u) << "the fixture's directory is private";
  const auto secret = rootfs.dir() / "secret";
  std::filesystem::create_directories(secret / "data");
  ::chmod(secret.c_str(), 0700);
  std::ofstream(secret / "note.txt") << "from-a-private-file\n";
  std::ofstream(secret / "data/inside.txt") << "from-a-private-dir\n";
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-private", rootfs, base, "cat /note.txt /data/inside.txt; echo END; exec sleep 60");
  c.mounts = {{(secret / "note.txt").string(), "/note.txt", "", "", true},
              {(secret / "data").string(), "/data", "", "", true}};
  std::unique_ptr<Container> container;
  std::string log = run_until_end(req, rootfs, container);
  EXPECT_NE(log.find("from-a-private-file\nfrom-a-private-dir\nEND"), std::string::npos) << log;
}

// Read-only mounts made by the definition or the runtime cannot be made
// writable, nor taken off, by a container root with every capability and no
// seccomp filter: the kernel locked them when the container copied the
// staging namespace.
TEST_F(MountSecurityTest, ReadOnlyMountsAndProcMasksAreLocked) {
  std::uint32_t base = test_id_base();
  TempRootfs rootfs(base);
  const auto shared = rootfs.dir() / "shared";
  std::filesystem::create_directory(shared);
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec(
      "haco-rt-locked", rootfs, base,
      "for m in /ro-bind /ro-tmpfs /sys /etc/resolv.conf /proc/sys; do "
      "  mount -o remount,bind,rw $m 2>/dev/null && echo \"$m=bind-rw\"; "
      "  mount -o remount,rw $m 2>/dev/null && echo \"$m=rw\"; "
      "  umount $m 2>/dev/null && echo \"$m=unmounted\"; "
      "done; "
      "touch /ro-bind/x 2>/dev/null && echo ro-bind=written; touch /ro-tmpfs/x 2>/dev/null && echo ro-tmpfs=written; "
      "umount /proc/interrupts 2>/dev/null && echo mask=unmounted; "
      "echo interrupts=$(wc -c < /proc/interrupts); "
      "( : > /proc/sys/kernel/hostname ) 2>/dev/null && echo proc-sys=writable; "
      "if [ -e /proc/sysrq-trigger ]; then ( : > /proc/sysrq-trigger ) 2>/dev/null && echo sysrq=writable; fi; "
      "touch /tmp/x && echo tmp=writable; "
      // Controls: the same commands work on the container's own devpts.
      "mount -o remount,bind,ro /dev/pts && mount -o remount,bind,rw /dev/pts && echo own-devpts=rw-again; "
      "mkdir /tmp/own && mount -t tmpfs own /tmp/own && umount /tmp/own && echo own-tmpfs=unmounted; "
      "echo END; exec sleep 60");
  c.mounts = {{"tmpfs", "/tmp", "tmpfs", "", false},
              {"tmpfs", "/ro-tmpfs", "tmpfs", "", true},
              {shared.string(), "/ro-bind", "", "", true}};
  c.network_etc_host_root = "/etc";
  c.independent_mounts = {IndependentMount::procfs, IndependentMount::sysfs, IndependentMount::devtmpfs,
                          IndependentMount::devpts, IndependentMount::shm};
  // Every capability and no seccomp filter (`allow :all`, default filter
  // off): what stops the remounts is the lock, not a denied call.
  c.capabilities = all_known_capabilities();
  c.seccomp_default_filter = false;
  std::unique_ptr<Container> container;
  std::string log = run_until_end(req, rootfs, container);
  ASSERT_NE(log.find("END"), std::string::npos) << log;
  // Nothing above succeeded but the writable /tmp, the masked file's read
  // and the controls.
  EXPECT_NE(log.find("own-devpts=rw-again"), std::string::npos) << log;
  EXPECT_NE(log.find("own-tmpfs=unmounted"), std::string::npos) << log;
  for (const char* point : {"/ro-bind", "/ro-tmpfs", "/sys", "/etc/resolv.conf", "/proc/sys"})
    for (const char* outcome : {"=bind-rw\n", "=rw\n", "=unmounted\n"})
      EXPECT_EQ(log.find(std::string(point) + outcome), std::string::npos) << point << outcome << log;
  EXPECT_EQ(log.find("mask=unmounted"), std::string::npos) << log;
  EXPECT_EQ(log.find("=written"), std::string::npos) << log;
  EXPECT_EQ(log.find("proc-sys=writable"), std::string::npos) << log;
  EXPECT_EQ(log.find("sysrq=writable"), std::string::npos) << log;
  // /proc/interrupts (world-readable, every host has it) reads empty: hidden.
  EXPECT_NE(log.find("interrupts=0\n"), std::string::npos) << "the host's interrupts are hidden: " << log;
  EXPECT_NE(log.find("tmp=writable"), std::string::npos) << log;

  auto mounts = mounts_of(container->pid());
  for (const char* point : {"/ro-bind", "/ro-tmpfs", "/sys", "/etc/resolv.conf", "/proc/sys"}) {
    const MountEntry* m = find_mount(mounts, point);
    ASSERT_NE(m, nullptr) << point;
    EXPECT_EQ(m->options.rfind("ro,", 0), 0u) << point << ": " << m->options;
  }
  EXPECT_NE(find_mount(mounts, "/proc/interrupts"), nullptr);
  for (const char* point : {"/tmp", "/dev", "/dev/shm"}) {
    const MountEntry* m = find_mount(mounts, point);
    ASSERT_NE(m, nullptr) << point;
    EXPECT_NE(m->options.find("nodev"), std::string::npos) << point << ": " << m->options;
  }
  // A tmpfs without size= gets the default size and inode count.
  for (const char* point : {"/tmp", "/dev/shm"}) {
    const MountEntry* m = find_mount(mounts, point);
    ASSERT_NE(m, nullptr) << point;
    EXPECT_NE(m->super_options.find("size=65536k"), std::string::npos) << point << ": " << m->super_options;
    EXPECT_NE(m->super_options.find("nr_inodes=65536"), std::string::npos) << point << ": " << m->super_options;
  }
}

// A container without a user namespace is the host's root: it still never
// gets the host's devtmpfs, only the tmpfs /dev with the harmless devices.
TEST_F(MountSecurityTest, HostRootGetsTheMinimalDevNotDevtmpfs) {
  TempRootfs rootfs(0);
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-hostroot", rootfs, 0, "echo dev=$(ls /dev | tr '\\n' ' '); echo END; exec sleep 60");
  c.namespaces = {Namespace::pid, Namespace::ipc, Namespace::uts, Namespace::mount};
  c.uid_map.clear();
  c.gid_map.clear();
  c.rootfs_owner.reset();
  std::unique_ptr<Container> container;
  std::string log = run_until_end(req, rootfs, container);
  EXPECT_NE(log.find("dev=fd full null random stderr stdin stdout tty urandom zero\n"), std::string::npos) << log;
  auto mounts = mounts_of(container->pid());
  const MountEntry* dev = find_mount(mounts, "/dev");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->fstype, "tmpfs");
}

// Both strategies of the rootfs engine under a 0700 base: the container
// starts and serves its files, and no other host user can reach the tree,
// the overlay's merged directory or its upper layer.
class PrivateBaseTest : public RootTest, public ::testing::WithParamInterface<rootfs::Strategy> {};

int errno_as_nobody(const std::string& path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)
      ::_exit(255);
    struct stat st {};
    ::_exit(::stat(path.c_str(), &st) == 0 ? 0 : errno);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_P(PrivateBaseTest, AContainerStartsFromARootfsUnderA0700Base) {
  char tmpl[] = "/tmp/haco-private-base.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string base_dir = tmpl;
  std::vector<rootfs::PreparedRootfs> prepared;
  struct Cleanup {
    const std::string& dir;
    std::vector<rootfs::PreparedRootfs>& prepared;
    ~Cleanup() {
      try {
        rootfs::teardown_fleet(prepared, true);
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{base_dir, prepared};

  std::uint32_t base = test_id_base();
  rootfs::InstanceRootfs inst{"haco-private", base_dir + "/roots/haco-private", busybox_image(),
                              {{0, base, 100}}, {{0, base, 100}}, rootfs::OwnershipPolicy::shift};
  rootfs::PrepareOptions options;
  options.strategy = GetParam();
  options.data_root = base_dir + "/data";
  options.progress = [](const std::string&, std::string_view) {};
  prepared = rootfs::prepare_fleet({inst}, options);
  ASSERT_EQ(prepared.size(), 1u);
  // A kernel without overlayfs over an idmapped lower layer falls back to
  // extract (and says so): the 0700 base is what is tested here.
  if (prepared[0].strategy != GetParam())
    GTEST_SKIP() << "the overlay strategy is not available on this kernel; extract was used";

  TempRootfs logs(base, "unused");
  runtime::LaunchRequest req;
  ContainerSpec& c = req.instance.container;
  c = busybox_spec("haco-rt-base", logs, base, "cat /www/index.html; echo END; exec sleep 60");
  c.rootfs = prepared[0].rootfs;
  std::unique_ptr<Container> container;
  std::string log = run_until_end(req, logs, container);
  ASSERT_NE(log.find("END"), std::string::npos) << log;
  EXPECT_NE(log.find("<"), std::string::npos) << "the page of the image: " << log;
  auto mounts = mounts_of(container->pid());
  const MountEntry* root = find_mount(mounts, "/");
  ASSERT_NE(root, nullptr);
  if (GetParam() == rootfs::Strategy::overlay) {
    EXPECT_EQ(root->fstype, "overlay") << "the merged mount itself is the container's root";
  }
  EXPECT_NE(root->options.find("nodev"), std::string::npos) << root->options;

  EXPECT_EQ(errno_as_nobody(prepared[0].rootfs + "/etc/passwd"), EACCES);
  EXPECT_EQ(errno_as_nobody(prepared[0].rootfs), EACCES);
  if (GetParam() == rootfs::Strategy::overlay) {
    EXPECT_EQ(errno_as_nobody(prepared[0].upper_dir), EACCES);
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, PrivateBaseTest,
                         ::testing::Values(rootfs::Strategy::extract, rootfs::Strategy::overlay),
                         [](const auto& info) { return std::string(rootfs::strategy_name(info.param)); });

}  // namespace
}  // namespace haco::testing
