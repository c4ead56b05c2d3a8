// A rootfs being written is marked in its instance's data directory before
// its first entry, and unmarked only once the tree is on disk (syncfs): a
// tree found still marked was left by a run that died (kill -9, a crash, a
// power cut) and is made again, never reused as it is.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"

namespace haco::rootfs {
namespace {

void fsync_path(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) throw Error::from_errno("open", path, errno);
  check_sys(::fsync(fd.get()), "fsync", path);
}

}  // namespace

void mark_rootfs_incomplete(const std::string& data_root, const std::string& instance) {
  const layout::DataRoot root(data_root);
  root.make_directories();
  const std::string dir = root.instance_dir(instance);
  if (::mkdir(dir.c_str(), layout::kPrivateMode) < 0 && errno != EEXIST) throw Error::from_errno("mkdir", dir, errno);
  const std::string marker = root.rootfs_incomplete_marker(instance);
  UniqueFd fd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) throw Error::from_errno("open", marker, errno);
  // On disk before the tree's first entry, so no crash can leave an
  // unmarked partial tree.
  check_sys(::fsync(fd.get()), "fsync", marker);
  fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

bool rootfs_marked_incomplete(const std::string& data_root, const std::string& instance) {
  struct stat st {};
  return ::lstat(layout::DataRoot(data_root).rootfs_incomplete_marker(instance).c_str(), &st) == 0;
}

void mark_rootfs_complete(const std::string& data_root, const std::string& instance) {
  const layout::DataRoot root(data_root);
  const std::string marker = root.rootfs_incomplete_marker(instance);
  if (::unlink(marker.c_str()) < 0 && errno != ENOENT) throw Error::from_errno("unlink", marker, errno);
  // The directory only held the marker for an extracted tree (an overlay's
  // keeps its layers there).
  const std::string dir = root.instance_dir(instance);
  ::rmdir(dir.c_str());
}

void sync_filesystems(const std::vector<std::string>& paths) {
  std::set<dev_t> synced;
  for (const std::string& path : paths) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw Error::from_errno("open", path, errno);
    struct stat st {};
    check_sys(::fstat(fd.get(), &st), "fstat", path);
    if (!synced.insert(st.st_dev).second) continue;
    check_sys(::syncfs(fd.get()), "syncfs", path);
  }
}

}  // namespace haco::rootfs
