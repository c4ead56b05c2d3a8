#include "runtime/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"

namespace haco {

std::string read_text_file(const std::string& path) {
  UniqueFd fd(static_cast<int>(check_sys(::open(path.c_str(), O_RDONLY | O_CLOEXEC), "open", path)));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    check_sys(n, "read", path);
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

void write_kernel_file(const std::string& path, std::string_view content) {
  UniqueFd fd(static_cast<int>(check_sys(::open(path.c_str(), O_WRONLY | O_CLOEXEC), "open", path)));
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  check_sys(n, "write", path);
  if (static_cast<std::size_t>(n) != content.size())
    throw Error::from_errno("write (short)", path, EIO);
}

}  // namespace haco
