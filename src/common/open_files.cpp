#include "haco/open_files.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <memory>

#include <fmt/format.h>

#include "haco/error.hpp"

namespace haco {

OpenFileLimit raise_open_file_limit() {
  rlimit lim{};
  check_sys(::getrlimit(RLIMIT_NOFILE, &lim), "getrlimit", "RLIMIT_NOFILE");
  OpenFileLimit result{lim.rlim_cur, lim.rlim_cur, lim.rlim_max};
  if (lim.rlim_cur == lim.rlim_max) return result;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
    throw Error::from_errno("setrlimit", fmt::format("RLIMIT_NOFILE {}", lim.rlim_max), errno);
  result.soft = lim.rlim_max;
  return result;
}

void check_open_file_need(std::uint64_t needed, const OpenFileLimit& limit, const std::string& what) {
  if (needed <= limit.hard) return;
  throw InputError(fmt::format("{} needs about {} open files (a pidfd and a pipe per instance in the supervisor), but "
                               "the hard limit of open files is {}; raise it (ulimit -Hn as root, or LimitNOFILE= in "
                               "a unit) or start fewer instances",
                               what, needed, limit.hard));
}

std::uint64_t open_descriptor_count() {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc/self/fd"), ::closedir);
  if (!dir) throw Error::from_errno("opendir", "/proc/self/fd", errno);
  std::uint64_t count = 0;
  while (dirent* entry = ::readdir(dir.get()))
    if (entry->d_name[0] != '.') ++count;
  // The directory's own descriptor is not one the process holds.
  return count > 0 ? count - 1 : 0;
}

}  // namespace haco
