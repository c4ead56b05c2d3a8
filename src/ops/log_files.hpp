// One instance's log as `logs` reads it: its generations (<log>.1, <log>)
// open at one moment, with their time marks, where a window of lines
// starts, and the lines from there. A line never spans two generations (the
// writer rotates at a newline, or cuts a line longer than the cap).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "haco/log_index.hpp"
#include "haco/ops_logs.hpp"
#include "haco/state.hpp"
#include "haco/unique_fd.hpp"

namespace haco::ops::logfiles {

// One generation, as it was when opened.
struct LogPart {
  std::string path;
  UniqueFd fd;
  std::uint64_t size = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  // Its marks; a part without an index, or whose first bytes precede its
  // first record, starts with {0, kNoTime}.
  std::vector<log_index::TimeMark> marks;
  bool fully_timed = false;  // every byte has a time

  // The time of the line that starts at `offset`.
  std::int64_t time_at(std::uint64_t offset) const;
};

// Opens `path` for reading without following a symlink; nullopt when it
// does not exist. Throws haco::Error.
std::optional<LogPart> open_part(const std::string& path);

// A place in an InstanceLog: a generation (0 is the oldest opened) and a
// byte offset in it.
struct Position {
  std::size_t part = 0;
  std::uint64_t offset = 0;
  bool operator==(const Position&) const = default;
  auto operator<=>(const Position&) const = default;
};

class InstanceLog {
 public:
  // Opens what exists of <log>.1 and <log>.
  explicit InstanceLog(const std::string& log_path);

  const std::vector<LogPart>& parts() const { return parts_; }
  // Whether the current generation <log> was there.
  bool has_current() const { return has_current_; }
  // The end of what was opened.
  Position end() const;
  // Where the lines of `window` start.
  Position start_of(const LogWindow& window) const;
  // Whether some bytes before `end()` have no time.
  bool has_untimed_lines() const;

  // The current generation's descriptor (for following); empty when none.
  LogPart take_current();

 private:
  // The first line start at or after `offset` in `part`: the rest of a
  // line that began before it is skipped.
  Position line_start_from(std::size_t part, std::uint64_t offset) const;
  Position since_start(std::int64_t since_unix_ms) const;
  Position tail_lines_start(std::size_t lines, Position lower) const;

  std::vector<LogPart> parts_;
  bool has_current_ = false;
};

// The lines of an InstanceLog from a position, one at a time, each with its
// time (a pull reader: `logs` merges many of them).
class LineReader {
 public:
  // The last bytes of the current generation without a newline are a line
  // when `unterminated_tail`; otherwise they stay for a follower, from
  // tail_start(). A part that ends without a newline (<log>.1, cut at the
  // cap) ends its line either way.
  LineReader(const InstanceLog& log, Position from, bool unterminated_tail);
  std::optional<TimedLine> next();
  // Where the bytes left unread start: the log's end, or the unterminated
  // tail that was left.
  Position tail_start() const { return tail_start_; }

 private:
  bool fill();
  void next_part();

  const InstanceLog& log_;
  bool unterminated_tail_;
  std::size_t part_;
  std::uint64_t read_offset_;  // the next byte of the part to read
  std::uint64_t line_offset_;  // the part's offset of buffer_[begin_]
  std::string buffer_;
  std::size_t begin_ = 0;    // buffer_ before it is consumed
  std::size_t scanned_ = 0;  // buffer_ from begin_ up to here has no newline
  Position tail_start_;
};

// A log followed as it grows: its current generation and how far it was
// read; bytes of a line not ended yet wait in `partial`.
struct FollowedLog {
  std::string instance;
  std::string path;
  LogPart current;  // fd empty while <log> does not exist
  std::uint64_t offset = 0;
  std::string partial;
};

// What a log directory held when `logs` started: an instance that appears
// later with a log that was already there (a name used before) is followed
// from where that log stood, not from its start.
struct LogDirEntry {
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t size = 0;
};
std::map<std::string, LogDirEntry> snapshot_log_dir(const std::string& dir);

// Follows `logs` (and, with `all_instances`, instances the fleet's state
// lists later) until `stop_fd` is readable or the fleet's state is gone.
LogsResult follow(const state::FleetPaths& paths, std::vector<FollowedLog> logs, bool all_instances,
                  const std::map<std::string, LogDirEntry>& at_start, int stop_fd, LogSink& sink);

// Reads everything from `fd` at `offset` to its end (pread), in chunks
// given to `chunk`; returns the new offset. Throws haco::Error naming `path`.
std::uint64_t read_to_end(int fd, std::uint64_t offset, const std::string& path,
                          const std::function<void(std::string_view)>& chunk);

}  // namespace haco::ops::logfiles
