#include "cli/log_level.hpp"

namespace haco::cli {

LogLevel log_level_named(std::string_view name) {
  if (name == "error") return LogLevel::error;
  if (name == "warn") return LogLevel::warn;
  if (name == "debug") return LogLevel::debug;
  return LogLevel::info;
}

LogLevel level_of_message(std::string_view text) {
  constexpr std::string_view kProgram = "haco-fleet: ";
  constexpr std::string_view kWarning = "haco-fleet: warning: ";
  if (text.substr(0, kWarning.size()) == kWarning) return LogLevel::warn;
  if (text.substr(0, kProgram.size()) == kProgram) return LogLevel::error;
  return LogLevel::info;
}

}  // namespace haco::cli
