#include "haco/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"
#include "haco/write_all.hpp"

namespace haco {
namespace {

void write_all(int fd, std::string_view data, const std::string& path) {
  if (!haco::write_all(fd, data.data(), data.size())) throw Error::from_errno("write", path, errno);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string temp = path + ".tmp-XXXXXX";
  UniqueFd fd(static_cast<int>(check_sys(::mkostemp(temp.data(), O_CLOEXEC), "mkostemp", temp)));
  try {
    // mkostemp makes it 0600 whatever the umask; the caller's mode is exact.
    check_sys(::fchmod(fd.get(), mode), "fchmod", temp);
    write_all(fd.get(), content, temp);
    check_sys(::fsync(fd.get()), "fsync", temp);
    check_sys(::close(fd.release()), "close", temp);
    check_sys(::rename(temp.c_str(), path.c_str()), "rename", temp + " -> " + path);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  // The rename itself is on disk only once the directory is.
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  check_sys(dir_fd.get(), "open", dir);
  check_sys(::fsync(dir_fd.get()), "fsync", dir);
}

}  // namespace haco
