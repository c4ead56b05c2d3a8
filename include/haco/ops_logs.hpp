// `haco-fleet logs`: the instance logs of a fleet, read from the files only
// (<log>.1 then <log>, with their time indexes, haco/log_index.hpp), so it
// works whether the supervisor runs or not. Lines of several instances are
// merged in time order; with `follow`, new bytes of every instance are
// printed as they arrive, instances that appear later and restarts included,
// and a log rotated meanwhile is followed by name (like tail -F) after the
// rest of the old file. docs/logs.md describes both.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "haco/log_index.hpp"

namespace haco::ops {

// --since: an RFC 3339 time ("2026-11-30T13:00:00Z", "...T22:00:00.5+09:00")
// or a duration before `now_unix_ms` ("90s", "10m", "2h", "1d", "1h30m").
// Returns unix ms. Throws haco::InputError.
std::int64_t parse_since(std::string_view text, std::int64_t now_unix_ms);

// Where the lines go.
class LogSink {
 public:
  virtual ~LogSink() = default;
  // `name` has lines to come (called before its first line, once per name).
  virtual void instance(std::string_view name) = 0;
  // One line of `instance`'s output, without its newline.
  virtual void line(std::string_view instance, std::string_view text) = 0;
  // A message for the user (not a log line): a fleet taken down, lines
  // without a time left out by --since.
  virtual void notice(std::string_view text) = 0;
  // A batch of lines is complete (following: before waiting again).
  virtual void flush() = 0;
};

// "NAME | line" like compose (names padded to the longest announced so far),
// or the bare line without `prefix`, the line through haco::printable (a
// control character is written \xNN); notices go to `notices`.
class PrefixedLogStream : public LogSink {
 public:
  PrefixedLogStream(std::ostream& out, std::ostream& notices, bool prefix)
      : out_(out), notices_(notices), prefix_(prefix) {}
  void instance(std::string_view name) override;
  void line(std::string_view instance, std::string_view text) override;
  void notice(std::string_view text) override;
  void flush() override;

 private:
  std::ostream& out_;
  std::ostream& notices_;
  bool prefix_;
  std::size_t width_ = 0;
};

// One line of an instance log and the time its index gives it
// (log_index::kNoTime for bytes written before the log had an index).
struct TimedLine {
  std::int64_t unix_ms = log_index::kNoTime;
  std::string text;
  bool operator==(const TimedLine&) const = default;
};

// What to read of one log.
struct LogWindow {
  std::optional<std::size_t> tail;          // the last N lines (after `since`)
  std::optional<std::int64_t> since_unix_ms;  // lines whose time is at or after
};

// The lines of the log at `log_path` (<log>.1 first, then <log>) within
// `window`, oldest first; a last line without its newline is one too. A line
// without a time counts as older than any `since`. Throws haco::Error.
std::vector<TimedLine> read_instance_log(const std::string& log_path, const LogWindow& window);

struct LogsRequest {
  std::string state_root;
  std::string data_root;
  std::string fleet;  // --name; empty: the only fleet (ops::choose_fleet)
  std::string ports;  // PORTS; empty: every instance, and with `follow` those that appear later
  LogWindow window;
  bool follow = false;
  // Following ends when this descriptor is readable (the command line's
  // signalfd for SIGINT and SIGTERM); -1: only when the fleet goes.
  int stop_fd = -1;
};

struct LogsResult {
  enum class End {
    read,         // without follow: everything asked for was printed
    stopped,      // following, stop_fd became readable
    fleet_gone,   // following, the fleet's state was removed (taken down)
  };
  End end = End::read;
};

// Prints the selected instances' logs on `sink`. Throws haco::InputError for
// an unknown fleet or port, haco::Error when a log cannot be read.
LogsResult logs(const LogsRequest& request, LogSink& sink);

}  // namespace haco::ops
