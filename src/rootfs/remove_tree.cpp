// Removing a tree that an archive (or a container) filled: relative to open
// directory fds, never following a symlink, refusing to descend into another
// mount (and refusing up front when /proc/self/mountinfo lists one inside).
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

#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"
#include "rootfs/mounts.hpp"

namespace haco::rootfs {
namespace {

std::uint64_t mount_id_of(int fd, const std::string& path) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) < 0)
    throw Error::from_errno("statx", path, errno);
  return stx.stx_mnt_id;
}

void remove_contents(int dir_fd, std::uint64_t mount_id, const std::string& path) {
  UniqueFd listing(dup(dir_fd));
  if (!listing) throw Error::from_errno("dup", path, errno);
  DIR* dir = fdopendir(listing.get());
  if (!dir) throw Error::from_errno("fdopendir", path, errno);
  listing.release();
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, closedir);
  while (dirent* d = readdir(dir)) {
    std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    const std::string child = path + "/" + d->d_name;
    bool is_dir = d->d_type == DT_DIR;
    if (d->d_type == DT_UNKNOWN) {
      struct stat st {};
      if (fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) throw Error::from_errno("fstatat", child, errno);
      is_dir = S_ISDIR(st.st_mode);
    }
    if (!is_dir) {
      if (unlinkat(dir_fd, d->d_name, 0) < 0 && errno != ENOENT) throw Error::from_errno("unlinkat", child, errno);
      continue;
    }
    UniqueFd sub(openat(dir_fd, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throw Error::from_errno("openat", child, errno);
    if (mount_id_of(sub.get(), child) != mount_id)
      throw Error(fmt::format("refusing to remove {}: something is mounted there", child));
    remove_contents(sub.get(), mount_id, child);
    if (unlinkat(dir_fd, d->d_name, AT_REMOVEDIR) < 0) throw Error::from_errno("rmdir", child, errno);
  }
}

}  // namespace

void remove_tree_contents(const std::string& path) {
  UniqueFd root(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) throw Error::from_errno("open", path, errno);
  remove_contents(root.get(), mount_id_of(root.get(), path), path);
}

void remove_tree(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return;
    throw Error::from_errno("lstat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) < 0) throw Error::from_errno("unlink", path, errno);
    return;
  }
  for (const std::string& m : mounts_at_or_under(path))
    throw Error(fmt::format("refusing to remove {}: {} is mounted", path, m));
  remove_tree_contents(path);
  if (rmdir(path.c_str()) < 0) throw Error::from_errno("rmdir", path, errno);
}

}  // namespace haco::rootfs
