// Process titles: what `ps` shows for the supervisor and its spawners.
#include <sys/prctl.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "haco/supervisor.hpp"

namespace haco::supervisor {
namespace {

// Fields 48 and 49 of /proc/self/stat: where the kernel reads our command
// line from (the argv strings on our own stack).
bool argv_area(unsigned long& start, unsigned long& end) {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 2));
  std::string value;
  for (int field = 3; field <= 49; ++field) {
    if (!(fields >> value)) return false;
    if (field == 48) start = std::stoul(value);
    if (field == 49) end = std::stoul(value);
  }
  return end > start;
}

}  // namespace

void set_process_title(const std::string& title) {
  // comm holds 15 bytes: keep the role and fleet ("supervisor web"), not the
  // program name that every title starts with.
  constexpr std::string_view kProgram = "haco-fleet: ";
  std::string comm = title.rfind(kProgram, 0) == 0 ? title.substr(kProgram.size()) : title;
  ::prctl(PR_SET_NAME, comm.substr(0, 15).c_str(), 0, 0, 0);
  unsigned long start = 0, end = 0;
  if (!argv_area(start, end)) return;
  // The argv strings are ours to overwrite; the title is cut to their length.
  auto* area = reinterpret_cast<char*>(start);
  std::size_t size = end - start;
  std::memset(area, 0, size);
  std::memcpy(area, title.data(), std::min(title.size(), size - 1));
}

}  // namespace haco::supervisor
