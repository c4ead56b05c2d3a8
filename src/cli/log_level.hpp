// How much the command line says on stderr: -q/--quiet and --log-level.
// Errors always print; what a command prints on stdout (tables, JSON, the
// summary of `up`) is its result and is not affected.
#pragma once

#include <string>
#include <string_view>

namespace haco::cli {

// In order: a level shows its own lines and those of the levels before it.
enum class LogLevel {
  error,
  warn,   // -q
  info,   // the default: progress and informational lines
  debug,  // every progress event on a line of its own, on a terminal too
};

// The names --log-level accepts, in the order above.
inline constexpr const char* kLogLevelNames[] = {"error", "warn", "info", "debug"};

// One of kLogLevelNames (the option parser holds --log-level to them).
LogLevel log_level_named(std::string_view name);

inline bool shows(LogLevel level, LogLevel line) { return line <= level; }

}  // namespace haco::cli
