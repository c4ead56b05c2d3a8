// Processes named by pid plus start time, and their memory from smaps_rollup.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "haco/state.hpp"

namespace haco::state {
namespace {

// The fields of /proc/PID/stat after the command name, which is in
// parentheses and may itself contain spaces or parentheses.
std::optional<std::string> stat_fields_after_comm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return std::nullopt;
  return line.substr(close + 2);
}

}  // namespace

std::optional<std::uint64_t> read_start_time(pid_t pid) {
  auto rest = stat_fields_after_comm(pid);
  if (!rest) return std::nullopt;
  // `rest` starts at field 3 (state); start time is field 22.
  std::istringstream fields(*rest);
  std::string value;
  for (int field = 3; field <= 22; ++field)
    if (!(fields >> value)) return std::nullopt;
  return std::stoull(value);
}

std::optional<ProcessIdentity> identify(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  auto start = read_start_time(pid);
  if (!start) return std::nullopt;
  return ProcessIdentity{pid, *start};
}

bool is_alive(const ProcessIdentity& who) {
  if (who.pid <= 0) return false;
  auto rest = stat_fields_after_comm(who.pid);
  if (!rest || rest->empty() || (*rest)[0] == 'Z' || (*rest)[0] == 'X') return false;
  auto start = read_start_time(who.pid);
  return start && *start == who.start_time;
}

bool signal_would_be_dropped(pid_t pid, int signal, bool namespace_init) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  std::uint64_t ignored = 0, caught = 0;
  while (std::getline(status, line)) {
    if (line.rfind("SigIgn:", 0) == 0) ignored = std::stoull(line.substr(7), nullptr, 16);
    if (line.rfind("SigCgt:", 0) == 0) caught = std::stoull(line.substr(7), nullptr, 16);
  }
  std::uint64_t bit = 1ull << (signal - 1);
  return (ignored & bit) || (namespace_init && !(caught & bit));
}

std::optional<MemoryUsage> read_memory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return std::nullopt;
  MemoryUsage usage;
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  bool any = false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (!(fields >> key >> kib >> unit)) continue;
    if (key == "Rss:") usage.rss_kib = kib, any = true;
    else if (key == "Pss:") usage.pss_kib = kib, any = true;
  }
  if (!any) return std::nullopt;
  return usage;
}

}  // namespace haco::state
