#include "runtime/mounts.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/mount_api.hpp"
#include "runtime/syscalls.hpp"

namespace haco::runtime {
namespace {

bool is_directory(const std::string& host_path) {
  struct stat st {};
  check_sys(::stat(host_path.c_str(), &st), "stat", host_path);
  return S_ISDIR(st.st_mode);
}

}  // namespace

UniqueFd prepare_rootfs(const ContainerSpec& c) {
  // Nothing mounted from here on propagates back to the host.
  check_sys(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "mount (make / rprivate)", "/");
  if (c.rootfs.empty() || c.rootfs.front() != '/')
    throw Error(fmt::format("the rootfs \"{}\" is not an absolute path", c.rootfs));
  // pivot_root needs the new root to be a mount point, and not one locked by
  // the copy into this user namespace's mount namespace (an overlay mounted
  // at the rootfs path by the host is): a bind of it onto itself is both.
  check_sys(::mount(c.rootfs.c_str(), c.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr), "mount (bind)",
            c.rootfs);
  return UniqueFd(static_cast<int>(
      check_sys(::open(c.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC), "open", c.rootfs)));
}

void mount_definition_points(int root_fd, const ContainerSpec& c) {
  for (const auto& m : c.mounts) {
    with_context(fmt::format("mount point {}", m.target), [&] {
      std::string options = m.read_only ? (m.options.empty() ? "ro" : m.options + ",ro") : m.options;
      if (m.fstype.empty()) {
        UniqueFd tree = copy_tree(m.source, true, options);
        UniqueFd target = is_directory(m.source) ? ensure_dir_in_root(root_fd, m.target)
                                                 : ensure_file_in_root(root_fd, m.target);
        attach(tree, target, m.target);
      } else {
        UniqueFd fs = new_filesystem(m.fstype, m.source, options);
        attach(fs, ensure_dir_in_root(root_fd, m.target), m.target);
      }
    });
  }
}

void mount_network_etc(int root_fd, const ContainerSpec& c) {
  if (!c.network_etc_host_root) return;
  for (const char* file : {"resolv.conf", "hosts"}) {
    std::string host = *c.network_etc_host_root + "/" + file;
    std::string target = std::string("/etc/") + file;
    with_context(fmt::format("mount_network_etc {}", target), [&] {
      UniqueFd tree = copy_tree(host, false, "ro,nosuid,nodev,noexec");
      attach(tree, ensure_file_in_root(root_fd, target), target);
    });
  }
}

void enter_rootfs(int root_fd) {
  // pivot_root(".", ".") stacks the old root on top of the new one; the
  // detach then removes it without needing a directory for it.
  check_sys(::fchdir(root_fd), "fchdir", "rootfs");
  check_sys(sys::pivot_root(".", "."), "pivot_root", "rootfs");
  check_sys(::umount2(".", MNT_DETACH), "umount2 (old root)", "/");
  check_sys(::chdir("/"), "chdir", "/");
}

}  // namespace haco::runtime
