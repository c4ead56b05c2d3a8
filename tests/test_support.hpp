// Small helpers shared by the test programs.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace haco::testing {

// The whole file; throws haco::Error naming it when it cannot be opened.
std::string read_text_file(const std::filesystem::path& path);

// The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...), '?' when
// the process is gone.
char process_state(pid_t pid);
// Running, as the kernel says: a zombie (killed, not yet reaped) does not
// count.
inline bool running(pid_t pid) {
  const char state = process_state(pid);
  return state != '?' && state != 'Z';
}

// A temporary directory removed (recursively) when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "haco-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name, const std::string& content) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

inline std::string seed_file(const std::string& name) {
  return std::string(HACO_SOURCE_DIR) + "/../shared/seed/" + name;
}

// Runs a shell command, returns its exit status and stdout+stderr.
struct CommandResult {
  int status = -1;
  std::string output;
};
CommandResult run_command(const std::string& command);

}  // namespace haco::testing
