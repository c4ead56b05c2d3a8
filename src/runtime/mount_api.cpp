#include "runtime/mount_api.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/syscalls.hpp"

namespace haco::runtime {
namespace {

constexpr std::pair<const char*, unsigned> kAttrFlags[] = {
    {"ro", MOUNT_ATTR_RDONLY},         {"nosuid", MOUNT_ATTR_NOSUID},     {"nodev", MOUNT_ATTR_NODEV},
    {"noexec", MOUNT_ATTR_NOEXEC},     {"noatime", MOUNT_ATTR_NOATIME},   {"nodiratime", MOUNT_ATTR_NODIRATIME},
    {"strictatime", MOUNT_ATTR_STRICTATIME}, {"relatime", MOUNT_ATTR_RELATIME},
};

struct SplitOptions {
  unsigned attrs = 0;
  std::vector<std::string> params;  // for fsconfig
};

SplitOptions split_options(const std::string& options) {
  SplitOptions out;
  std::size_t pos = 0;
  while (pos <= options.size()) {
    auto end = options.find(',', pos);
    if (end == std::string::npos) end = options.size();
    std::string opt = options.substr(pos, end - pos);
    pos = end + 1;
    if (opt.empty() || opt == "rw" || opt == "defaults") continue;
    bool is_attr = false;
    for (const auto& [name, flag] : kAttrFlags)
      if (opt == name) {
        out.attrs |= flag;
        is_attr = true;
      }
    if (!is_attr) out.params.push_back(opt);
  }
  return out;
}

std::string path_parent(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string path_base(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The kernel explains a refused fsconfig in the fs context's log.
std::string fs_context_log(int fs_fd) {
  std::string log;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fs_fd, buf, sizeof buf - 1)) > 0) {
    buf[n] = '\0';
    log.append(log.empty() ? "" : "; ").append(buf + (n > 2 && buf[1] == ' ' ? 2 : 0));
  }
  return log;
}

// Gives what was just created as `name` in `parent` to `owner`.
void own_created(int parent, const std::string& name, const std::string& path, const std::optional<Owner>& owner) {
  if (owner && ::fchownat(parent, name.c_str(), owner->uid, owner->gid, AT_SYMLINK_NOFOLLOW) != 0)
    throw Error::from_errno("fchownat", path, errno);
}

}  // namespace

int open_in_root(int root_fd, const std::string& path, int extra_flags) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(O_PATH | O_CLOEXEC | extra_flags);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    int fd = sys::openat2(root_fd, path.c_str(), how);
    if (fd >= 0 || errno != EAGAIN) return fd;
  }
}

UniqueFd ensure_dir_in_root(int root_fd, const std::string& path, const std::optional<Owner>& owner) {
  int fd = open_in_root(root_fd, path, O_DIRECTORY);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != ENOENT || path == "/" || path.empty()) throw Error::from_errno("openat2", path, errno);
  UniqueFd parent = ensure_dir_in_root(root_fd, path_parent(path), owner);
  const std::string name = path_base(path);
  if (::mkdirat(parent.get(), name.c_str(), 0755) == 0)
    own_created(parent.get(), name, path, owner);
  else if (errno != EEXIST)
    throw Error::from_errno("mkdirat", path, errno);
  return UniqueFd(static_cast<int>(check_sys(open_in_root(root_fd, path, O_DIRECTORY), "openat2", path)));
}

UniqueFd ensure_file_in_root(int root_fd, const std::string& path, const std::optional<Owner>& owner) {
  int fd = open_in_root(root_fd, path);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != ENOENT) throw Error::from_errno("openat2", path, errno);
  UniqueFd parent = ensure_dir_in_root(root_fd, path_parent(path), owner);
  const std::string name = path_base(path);
  // O_NOFOLLOW | O_EXCL: a dangling symlink planted here is refused, not followed.
  int created = ::openat(parent.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (created < 0) throw Error::from_errno("openat (create)", path, errno);
  ::close(created);
  own_created(parent.get(), name, path, owner);
  return UniqueFd(static_cast<int>(check_sys(open_in_root(root_fd, path), "openat2", path)));
}

void ensure_symlink_in_root(int root_fd, const std::string& path, const std::string& target,
                            const std::optional<Owner>& owner) {
  UniqueFd parent = ensure_dir_in_root(root_fd, path_parent(path), owner);
  const std::string name = path_base(path);
  if (::symlinkat(target.c_str(), parent.get(), name.c_str()) == 0)
    own_created(parent.get(), name, path, owner);
  else if (errno != EEXIST)
    throw Error::from_errno("symlinkat", path, errno);
}

bool has_option(const std::string& options, const std::string& key) {
  std::size_t pos = 0;
  while (pos <= options.size()) {
    auto end = options.find(',', pos);
    if (end == std::string::npos) end = options.size();
    std::string opt = options.substr(pos, end - pos);
    if (opt == key || opt.rfind(key + "=", 0) == 0) return true;
    pos = end + 1;
  }
  return false;
}

UniqueFd new_filesystem(const std::string& fstype, const std::string& source, const std::string& options,
                        const std::vector<std::pair<std::string, int>>& fd_options) {
  UniqueFd fs(::fsopen(fstype.c_str(), FSOPEN_CLOEXEC));
  if (!fs) throw Error::from_errno("fsopen", fstype, errno);
  auto config = [&](unsigned cmd, const char* key, const char* value, const std::string& what) {
    if (::fsconfig(fs.get(), cmd, key, value, 0) != 0) {
      int err = errno;
      std::string log = fs_context_log(fs.get());
      Error e = Error::from_errno("fsconfig", fmt::format("{} ({})", fstype, what), err);
      if (!log.empty()) e.with_context(log);
      throw e;
    }
  };
  if (!source.empty()) config(FSCONFIG_SET_STRING, "source", source.c_str(), "source=" + source);
  for (const auto& [key, fd] : fd_options)
    if (::fsconfig(fs.get(), FSCONFIG_SET_FD, key.c_str(), nullptr, fd) != 0)
      throw Error::from_errno("fsconfig", fmt::format("{} ({} by fd)", fstype, key), errno);
  SplitOptions split = split_options(options);
  for (const auto& p : split.params) {
    auto eq = p.find('=');
    if (eq == std::string::npos)
      config(FSCONFIG_SET_FLAG, p.c_str(), nullptr, p);
    else
      config(FSCONFIG_SET_STRING, p.substr(0, eq).c_str(), p.substr(eq + 1).c_str(), p);
  }
  config(FSCONFIG_CMD_CREATE, nullptr, nullptr, "create");
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, split.attrs));
  if (!mnt) throw Error::from_errno("fsmount", fstype, errno);
  return mnt;
}

namespace {

UniqueFd copy_tree_at(int dir_fd, const char* path, unsigned extra_flags, const std::string& name, bool recursive,
                      const std::string& options) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | extra_flags | (recursive ? AT_RECURSIVE : 0);
  UniqueFd tree(::open_tree(dir_fd, path, flags));
  if (!tree) throw Error::from_errno("open_tree", name, errno);
  SplitOptions split = split_options(options);
  if (!split.params.empty())
    throw Error(fmt::format("bind mount of {}: option \"{}\" is not a mount flag", name, split.params.front()));
  if (split.attrs != 0) {
    mount_attr attr{};
    attr.attr_set = split.attrs;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) != 0)
      throw Error::from_errno("mount_setattr", name, errno);
  }
  return tree;
}

}  // namespace

UniqueFd copy_tree(const std::string& source, bool recursive, const std::string& options) {
  return copy_tree_at(AT_FDCWD, source.c_str(), 0, source, recursive, options);
}

UniqueFd copy_tree(const UniqueFd& source, const std::string& name, bool recursive, const std::string& options) {
  return copy_tree_at(source.get(), "", AT_EMPTY_PATH, name, recursive, options);
}

void attach(const UniqueFd& mount_fd, const UniqueFd& target_fd, const std::string& target_name) {
  if (::move_mount(mount_fd.get(), "", target_fd.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
    throw Error::from_errno("move_mount", target_name, errno);
}

void stack_as_root(const UniqueFd& tree, const std::string& name) {
  if (::move_mount(tree.get(), "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) != 0)
    throw Error::from_errno("move_mount", name + " onto /", errno);
  // The top of the stack on the namespace's root: the kernel does not count
  // this as chrooted (user namespaces can still be made from here).
  check_sys(::fchdir(tree.get()), "fchdir", name);
  check_sys(::chroot("."), "chroot", name);
}

void pivot_into(const UniqueFd& tree, const std::string& name) {
  if (::move_mount(tree.get(), "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) != 0)
    throw Error::from_errno("move_mount", name + " onto /", errno);
  // pivot_root(".", ".") stacks the old root on top of the new one; the
  // detach then removes it without needing a directory for it.
  check_sys(::fchdir(tree.get()), "fchdir", name);
  check_sys(sys::pivot_root(".", "."), "pivot_root", name);
  check_sys(::umount2(".", MNT_DETACH), "umount2 (old root)", "/");
  check_sys(::chdir("/"), "chdir", "/");
}

}  // namespace haco::runtime
