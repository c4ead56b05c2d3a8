#include "supervisor/supervisor_log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/format.h>

namespace haco::supervisor {

void log_line(const std::string& text) {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::tm utc{};
  std::strftime(stamp, sizeof(stamp), "%F %T", ::gmtime_r(&now, &utc));
  fmt::print(stderr, "{} {}\n", stamp, text);
  std::fflush(stderr);
}

}  // namespace haco::supervisor
