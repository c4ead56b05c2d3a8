// Per-instance log files with a size cap and one rotated generation. A
// container's stdout and stderr are a pipe; the fleet's log writer moves what
// arrives on it into <log> with splice() (the bytes leave the pipe only once
// they are in the file), and before a write would take <log> past the cap it
// renames <log> to <log>.1 (replacing the previous generation) and starts a
// new <log>. Nothing is truncated: below the cap nothing is lost, and an
// instance's logs hold at most 2 x cap bytes on disk (plus their time
// indexes, haco/log_index.hpp: <log>.idx, at most cap / 16 bytes each; an
// index that is full rotates its log like a full log does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "haco/unique_fd.hpp"

namespace haco::supervisor {

// Creates the log's directory (private: layout::make_private_directory) and
// the file, mode 0600 (empty, or kept as it is).
void prepare_instance_log(const std::string& path);

// What to do with `available` bytes waiting for a log of `size` bytes capped
// at `max_bytes`: append the first `write_now` of them, then rotate when
// `rotate_after`. When they do not all fit, `head` holds the first
// min(available, max_bytes - size) of them (it is not read otherwise): the
// chunk is cut after its last newline that fits, so a line is not split
// across two files; a log that holds something and has no room for the next
// line is rotated first; a line longer than the cap itself is cut at the cap.
struct LogChunkPlan {
  std::size_t write_now = 0;
  bool rotate_after = false;
  bool operator==(const LogChunkPlan&) const = default;
};
LogChunkPlan plan_log_chunk(std::uint64_t size, std::uint64_t max_bytes, std::size_t available,
                            std::string_view head);

// One instance log open for appending, with its cap. Opened relative to its
// directory, without following a symlink at the last component.
class InstanceLogFile {
 public:
  // Opens (or creates, 0600) `path`, whose directory exists; what the file
  // already holds is kept and counts towards the cap. Throws haco::Error.
  InstanceLogFile(std::string path, std::uint64_t max_bytes);

  // Moves at most `bytes` from the pipe `pipe` (non-blocking) to the end of
  // the file, and notes their time in the index when its last record is
  // log_index::kIntervalMs old (`now_unix_ms`: the wall clock, taken by the
  // caller once per chunk). Returns how many moved: 0 when the pipe is empty
  // or at end of file. Throws haco::Error (splice, the log's path, errno);
  // a failure to write the index does not (index_error()).
  std::size_t append_from_pipe(int pipe, std::size_t bytes, std::int64_t now_unix_ms);
  // <log> becomes <log>.1 and <log>.idx <log>.1.idx (replacing them), and a
  // new empty <log> and index are opened.
  void rotate();

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  std::uint64_t max_bytes() const { return max_bytes_; }
  // The index has no room for another record (cap / 16 bytes of records):
  // the log is rotated before its next chunk.
  bool index_full() const;
  // Why the index could not be written since the last call (empty when it
  // could); the log itself is written on regardless, its new bytes carry the
  // time of the last record that was written.
  std::string take_index_error() { return std::exchange(index_error_, {}); }

 private:
  void open_file();
  void open_index();
  void note_time(std::uint64_t offset, std::int64_t now_unix_ms);

  std::string path_;
  std::string name_;
  std::uint64_t max_bytes_;
  UniqueFd dir_;
  UniqueFd file_;
  std::uint64_t size_ = 0;
  // The time index (log_index.hpp): its size and its last record's time.
  UniqueFd index_;
  std::uint64_t index_size_ = 0;
  std::optional<std::int64_t> last_mark_ms_;
  std::string index_error_;
};

// A private pipe into which waiting bytes are copied with tee() to be looked
// at without being taken from the pipe they wait in.
class PipePeek {
 public:
  PipePeek();
  // Up to `bytes` of what waits in `pipe`, left there.
  std::string_view look(int pipe, std::size_t bytes);

 private:
  UniqueFd read_end_, write_end_;
  std::vector<char> buffer_;
};

struct DrainResult {
  std::uint64_t moved = 0;
  bool end_of_file = false;  // empty, and no writer is left
};

// Moves what waits in `pipe` (non-blocking) into `log`, rotating as
// plan_log_chunk says, until the pipe is empty or `budget` bytes moved.
// Throws haco::Error when the log cannot be written.
DrainResult drain_pipe_into_log(int pipe, InstanceLogFile& log, PipePeek& peek, std::uint64_t budget);

// Reads and drops what waits in `pipe`, at most `budget` bytes: a log that
// cannot be written must not hold its container up. `moved` counts the bytes
// dropped.
DrainResult discard_pipe(int pipe, std::uint64_t budget);

}  // namespace haco::supervisor
