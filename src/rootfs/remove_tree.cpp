// Removing a tree that an archive (or a container) filled: relative to open
// directory fds, never following a symlink, refusing to descend into another
// mount (and refusing up front when /proc/self/mountinfo lists one at or
// inside it, by mount identity, rootfs/mounts.hpp).
// On an ext4 mounted with `discard` every unlink of a file with data waits on
// the device; io_uring unlinks within one tree were measured no faster (the
// frees of one tree serialize), so trees are removed in parallel instead
// (teardown_fleet).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"
#include "rootfs/mounts.hpp"

namespace haco::rootfs {
namespace {

struct Identity {
  dev_t dev;
  ino_t ino;
  bool operator==(const Identity&) const = default;
};

Identity identity_of(int fd, const std::string& path) {
  struct stat st {};
  if (fstat(fd, &st) < 0) throw Error::from_errno("fstat", path, errno);
  return {st.st_dev, st.st_ino};
}

// Removes every entry of `dir_fd` that is not a directory; returns the
// names of its subdirectories.
std::vector<std::string> remove_files_list_directories(int dir_fd, const std::string& path) {
  UniqueFd listing(dup(dir_fd));
  if (!listing) throw Error::from_errno("dup", path, errno);
  DIR* dir = fdopendir(listing.get());
  if (!dir) throw Error::from_errno("fdopendir", path, errno);
  listing.release();
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, closedir);
  std::vector<std::string> subdirectories;
  while (dirent* d = readdir(dir)) {
    std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = d->d_type == DT_DIR;
    if (d->d_type == DT_UNKNOWN) {
      struct stat st {};
      if (fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        throw Error::from_errno("fstatat", path + "/" + d->d_name, errno);
      is_dir = S_ISDIR(st.st_mode);
    }
    if (is_dir) {
      subdirectories.emplace_back(name);
      continue;
    }
    if (unlinkat(dir_fd, d->d_name, 0) < 0 && errno != ENOENT)
      throw Error::from_errno("unlinkat", path + "/" + d->d_name, errno);
  }
  return subdirectories;
}

// Depth first, in a loop with one directory open at a time: a container can
// make a tree deeper than the descriptor limit, or the stack, would allow
// with an open directory and a call per level. Going down opens the child
// with O_NOFOLLOW; going up opens ".." and checks that it is the directory
// it came from before removing the child.
void remove_contents(int root_fd, std::uint64_t mount_id, const std::string& root_path) {
  struct Level {
    std::string name;                  // in its parent ("" for the root)
    Identity parent{};                 // the parent's device and inode
    std::vector<std::string> pending;  // subdirectories still to remove
  };
  UniqueFd current(dup(root_fd));
  if (!current) throw Error::from_errno("dup", root_path, errno);
  std::string path = root_path;
  std::vector<Level> levels;
  levels.push_back({"", {}, remove_files_list_directories(current.get(), path)});
  for (;;) {
    Level& level = levels.back();
    if (!level.pending.empty()) {
      std::string sub = std::move(level.pending.back());
      level.pending.pop_back();
      Identity parent = identity_of(current.get(), path);
      // `path` grows and shrinks in place: copying it at every level would
      // cost the square of the depth.
      path.append("/").append(sub);
      UniqueFd next(openat(current.get(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next) throw Error::from_errno("openat", path, errno);
      if (mount_id_of(next.get(), path) != mount_id)
        throw Error(fmt::format("refusing to remove {}: something is mounted there", path));
      auto pending = remove_files_list_directories(next.get(), path);
      levels.push_back({std::move(sub), parent, std::move(pending)});
      current = std::move(next);
      continue;
    }
    if (levels.size() == 1) return;
    const std::string name = std::move(level.name);
    const Identity expected = level.parent;
    levels.pop_back();
    UniqueFd parent(openat(current.get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!parent) throw Error::from_errno("openat", path + "/..", errno);
    struct stat up {};
    if (fstat(parent.get(), &up) < 0) throw Error::from_errno("fstat", path + "/..", errno);
    if (!(Identity{up.st_dev, up.st_ino} == expected))
      throw Error(fmt::format("refusing to remove {}: {} was moved while it was being removed", root_path, path));
    if (unlinkat(parent.get(), name.c_str(), AT_REMOVEDIR) < 0) throw Error::from_errno("rmdir", path, errno);
    current = std::move(parent);
    path.resize(path.size() - name.size() - 1);
  }
}

UniqueFd open_directory(const std::string& path) {
  UniqueFd root(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) throw Error::from_errno("open", path, errno);
  return root;
}

// A missing path: nothing to do; a file: unlinked; a directory: its fd.
UniqueFd directory_to_remove(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return {};
    throw Error::from_errno("lstat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) < 0) throw Error::from_errno("unlink", path, errno);
    return {};
  }
  return open_directory(path);
}

void remove_directory(const UniqueFd& root, const std::string& path, const std::vector<std::string>& mounted) {
  for (const std::string& m : mounted) throw Error(fmt::format("refusing to remove {}: {} is mounted", path, m));
  remove_contents(root.get(), mount_id_of(root.get(), path), path);
  if (rmdir(path.c_str()) < 0) throw Error::from_errno("rmdir", path, errno);
}

}  // namespace

void remove_tree_contents(const std::string& path) {
  UniqueFd root = open_directory(path);
  remove_contents(root.get(), mount_id_of(root.get(), path), path);
}

void remove_tree(const std::string& path, const MountTable& table) {
  UniqueFd root = directory_to_remove(path);
  if (root) remove_directory(root, path, mounts_at_or_under(root.get(), path, table));
}

void remove_tree(const std::string& path) {
  // Asked of the directory opened, by mount id and resolved path: a symlink
  // on the way to `path` cannot hide a mount from the check.
  UniqueFd root = directory_to_remove(path);
  if (root) remove_directory(root, path, mounts_at_or_under(root.get(), path));
}

}  // namespace haco::rootfs
