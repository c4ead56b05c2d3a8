// The time index beside an instance log. The log writer moves a container's
// output into <log> as raw bytes, so a line carries no time of its own;
// <log>.idx says when the bytes at each offset were written: a 16-byte
// header, then fixed 16-byte records (byte offset, unix ms), both
// little-endian, appended when a chunk is written and the last record is
// `kIntervalMs` old or more (or there is none). Every byte from a record's
// offset to the next record's was written within kIntervalMs of its time.
// The rotated generation <log>.1 has <log>.1.idx. A log written before the
// index existed has none (or its first bytes precede the first record):
// those bytes have no time (kNoTime). The format is documented in
// docs/logs.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace haco::log_index {

inline constexpr std::int64_t kIntervalMs = 1000;
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::size_t kRecordSize = 16;
inline constexpr std::uint32_t kVersion = 1;
// No time known: bytes written before the log had an index.
inline constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();

// The index of the log at `log_path`: <log>.idx (so <log>.1.idx for <log>.1).
inline std::string index_path(const std::string& log_path) { return log_path + ".idx"; }

struct TimeMark {
  std::uint64_t offset = 0;
  std::int64_t unix_ms = 0;
  bool operator==(const TimeMark&) const = default;
};

// The 16 bytes that start every index: "HACOLIDX", version, record size.
std::string header();
std::string encode(const TimeMark& mark);
// Whether `bytes` (at least kHeaderSize of them) start an index this
// version reads.
bool is_header(std::string_view bytes);
TimeMark decode(std::string_view record);

// The records of an index file's bytes: nullopt when they do not start with
// a header; a torn last record is left out, and so is every record from the
// first whose offset goes backwards or past `log_size` (an index that does not
// belong to the log beside it any more).
std::optional<std::vector<TimeMark>> parse(std::string_view bytes, std::uint64_t log_size);

// The index of an open log: nullopt when the file is missing or not an
// index. `dir_fd` and `name` as for openat (no symlink followed at the last
// component). Throws haco::Error when it exists and cannot be read.
std::optional<std::vector<TimeMark>> read(int dir_fd, const std::string& name, std::uint64_t log_size);

}  // namespace haco::log_index
