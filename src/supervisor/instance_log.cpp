// Instance logs: one file per instance, capped in size. The init keeps its
// descriptor open in O_APPEND mode, so a full log is copied to <log>.1 and
// truncated in place (the init's next write lands at the new end).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/unique_fd.hpp"
#include "supervisor/instance_log.hpp"

namespace haco::supervisor {

void prepare_instance_log(const std::string& path) {
  layout::make_private_directory(std::filesystem::path(path).parent_path());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  check_sys(fd.get(), "open", path);
  // What an init writes is for root only (a log made by an older run was 0640).
  check_sys(::fchmod(fd.get(), 0600), "fchmod", path);
}

bool rotate_instance_log(const std::string& path, std::uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) <= max_bytes) return false;
  std::string rotated = path + ".1";
  std::error_code ec;
  std::filesystem::copy_file(path, rotated, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) throw Error::from_errno("copy", path + " -> " + rotated, ec.value());
  check_sys(::chmod(rotated.c_str(), 0600), "chmod", rotated);
  check_sys(::truncate(path.c_str(), 0), "truncate", path);
  return true;
}

}  // namespace haco::supervisor
