// Whether a rootfs directory holds anything: one reading of the directory
// for `up`'s checks, `expand`'s description and the engine's refusal to
// write into a tree that is already there.
#include <dirent.h>
#include <fcntl.h>

#include <cerrno>
#include <memory>
#include <string_view>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"

namespace haco::rootfs {
namespace {

bool has_entries(UniqueFd dir_fd, const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(dir_fd.get()), ::closedir);
  if (!dir) throw Error::from_errno("fdopendir", path, errno);
  dir_fd.release();  // closed with `dir`
  errno = 0;
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") return true;
  }
  if (errno != 0) throw Error::from_errno("readdir", path, errno);
  return false;
}

}  // namespace

bool rootfs_populated(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return false;
    throw Error::from_errno("open", path, errno);
  }
  return has_entries(std::move(fd), path);
}

bool directory_has_entries(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw Error::from_errno("open", path, errno);
  return has_entries(std::move(fd), path);
}

}  // namespace haco::rootfs
