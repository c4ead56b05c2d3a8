// mount_independent: the kernel filesystems a container gets of its own.
// Inside a user namespace the kernel refuses devtmpfs, and sysfs unless the
// container also has its own network namespace; their standard equivalents
// are used then (see docs/runtime.md for what the container can reach).
#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/mount_api.hpp"
#include "runtime/mounts.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

constexpr std::array<const char*, 6> kHostDevices{"null", "zero", "full", "random", "urandom", "tty"};

bool asked(const ContainerSpec& c, IndependentMount m) {
  return std::find(c.independent_mounts.begin(), c.independent_mounts.end(), m) != c.independent_mounts.end();
}

bool gid_mapped_inside(const ContainerSpec& c, std::uint32_t gid) {
  if (!wants_user_namespace(c)) return true;
  return std::any_of(c.gid_map.begin(), c.gid_map.end(),
                     [&](const IdMapping& m) { return gid >= m.inside && gid - m.inside < m.count; });
}

void mount_fs(int root_fd, const char* target, const char* fstype, const char* source, const std::string& options) {
  with_context(fmt::format("mounting {} on {}", fstype, target), [&] {
    UniqueFd fs = new_filesystem(fstype, source, options);
    attach(fs, ensure_dir_in_root(root_fd, target), target);
  });
}

void mount_sysfs(int root_fd, const ContainerSpec& c) {
  if (!wants_user_namespace(c) || c.has_namespace(Namespace::net)) {
    mount_fs(root_fd, "/sys", "sysfs", "sysfs", "ro,nosuid,nodev,noexec");
    return;
  }
  with_context("binding the host's /sys read-only on /sys", [&] {
    UniqueFd tree = copy_tree("/sys", true, "ro,nosuid,nodev,noexec");
    attach(tree, ensure_dir_in_root(root_fd, "/sys"), "/sys");
  });
}

// A tmpfs /dev holding binds of the host's harmless character devices.
void mount_dev_equivalent(int root_fd) {
  mount_fs(root_fd, "/dev", "tmpfs", "tmpfs", "mode=0755,size=64k,nosuid,noexec");
  for (const char* dev : kHostDevices) {
    std::string target = fmt::format("/dev/{}", dev);
    with_context(fmt::format("binding the host's {}", target), [&] {
      UniqueFd tree = copy_tree(target, false, "nosuid,noexec");
      attach(tree, ensure_file_in_root(root_fd, target), target);
    });
  }
  ensure_symlink_in_root(root_fd, "/dev/fd", "/proc/self/fd");
  ensure_symlink_in_root(root_fd, "/dev/stdin", "/proc/self/fd/0");
  ensure_symlink_in_root(root_fd, "/dev/stdout", "/proc/self/fd/1");
  ensure_symlink_in_root(root_fd, "/dev/stderr", "/proc/self/fd/2");
}

}  // namespace

void mount_independent(int root_fd, const ContainerSpec& c) {
  if (asked(c, IndependentMount::procfs)) mount_fs(root_fd, "/proc", "proc", "proc", "nosuid,nodev,noexec");
  if (asked(c, IndependentMount::sysfs)) mount_sysfs(root_fd, c);
  if (asked(c, IndependentMount::devtmpfs)) {
    if (wants_user_namespace(c))
      mount_dev_equivalent(root_fd);
    else
      mount_fs(root_fd, "/dev", "devtmpfs", "devtmpfs", "nosuid,noexec");
  }
  if (asked(c, IndependentMount::devpts)) {
    std::string options = "newinstance,ptmxmode=0666,mode=0620,nosuid,noexec";
    if (gid_mapped_inside(c, 5)) options += ",gid=5";
    mount_fs(root_fd, "/dev/pts", "devpts", "devpts", options);
    ensure_symlink_in_root(root_fd, "/dev/ptmx", "pts/ptmx");
  }
  if (asked(c, IndependentMount::shm)) mount_fs(root_fd, "/dev/shm", "tmpfs", "shm", "mode=1777,nosuid,nodev,noexec");
}

}  // namespace haco::runtime
