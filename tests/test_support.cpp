#include "test_support.hpp"

#include <cerrno>
#include <sstream>

#include "haco/error.hpp"

#include <sys/wait.h>

#include <cstdio>

namespace haco::testing {

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error::from_errno("open", path.string(), errno);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return '?';
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? '?' : line[close + 2];
}

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace haco::testing
