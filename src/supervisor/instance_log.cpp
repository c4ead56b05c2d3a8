// Instance logs: one file per instance, capped in size. The init keeps its
// descriptor open in O_APPEND mode, so a full log is copied to <log>.1 and
// truncated in place (the init's next write lands at the new end).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"
#include "supervisor/instance_log.hpp"

namespace haco::supervisor {

void prepare_instance_log(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) throw Error::from_errno("mkdir", std::filesystem::path(path).parent_path(), ec.value());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  check_sys(fd.get(), "open", path);
}

bool rotate_instance_log(const std::string& path, std::uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) <= max_bytes) return false;
  std::string rotated = path + ".1";
  std::error_code ec;
  std::filesystem::copy_file(path, rotated, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) throw Error::from_errno("copy", path + " -> " + rotated, ec.value());
  check_sys(::truncate(path.c_str(), 0), "truncate", path);
  return true;
}

}  // namespace haco::supervisor
