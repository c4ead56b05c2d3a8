#include "cli/log_level.hpp"

namespace haco::cli {

LogLevel log_level_named(std::string_view name) {
  if (name == "error") return LogLevel::error;
  if (name == "warn") return LogLevel::warn;
  if (name == "debug") return LogLevel::debug;
  return LogLevel::info;
}

}  // namespace haco::cli
