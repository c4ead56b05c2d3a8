// An instance's log generations as `logs` reads them: windows (--since,
// -n) found from the time marks and by scanning backwards for newlines, and
// lines read forward with their times.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "haco/error.hpp"
#include "ops/log_files.hpp"

namespace haco::ops::logfiles {
namespace {

constexpr std::size_t kChunk = 64 * 1024;

// Reads up to `bytes` at `offset`; fewer at the file's end.
std::size_t read_at(const LogPart& part, char* buffer, std::size_t bytes, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::pread(part.fd.get(), buffer + got, bytes - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error::from_errno("read", part.path, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

}  // namespace

std::int64_t LogPart::time_at(std::uint64_t offset) const {
  auto after = std::upper_bound(marks.begin(), marks.end(), offset,
                                [](std::uint64_t at, const log_index::TimeMark& m) { return at < m.offset; });
  return after == marks.begin() ? log_index::kNoTime : std::prev(after)->unix_ms;
}

std::optional<LogPart> open_part(const std::string& path) {
  // O_NONBLOCK: a FIFO in a log's place cannot hold the reader up.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw Error::from_errno("open", path, errno);
  }
  struct stat st {};
  check_sys(::fstat(fd.get(), &st), "fstat", path);
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  LogPart part;
  part.path = path;
  part.fd = std::move(fd);
  part.size = static_cast<std::uint64_t>(st.st_size);
  part.dev = st.st_dev;
  part.ino = st.st_ino;
  auto marks = log_index::read(AT_FDCWD, log_index::index_path(path), part.size);
  if (marks) part.marks = std::move(*marks);
  part.fully_timed = part.size == 0 || (!part.marks.empty() && part.marks.front().offset == 0);
  if (!part.fully_timed) part.marks.insert(part.marks.begin(), {0, log_index::kNoTime});
  return part;
}

InstanceLog::InstanceLog(const std::string& log_path) {
  // <log> first: rotated before <log>.1 is opened, the file opened as <log>
  // is <log>.1 by then, and is read once, as the current generation (a
  // follower then finds the new <log> by name).
  auto current = open_part(log_path);
  auto older = open_part(log_path + ".1");
  if (older && !(current && older->dev == current->dev && older->ino == current->ino))
    parts_.push_back(std::move(*older));
  if (current) {
    parts_.push_back(std::move(*current));
    has_current_ = true;
  }
}

Position InstanceLog::end() const {
  if (parts_.empty()) return {};
  return {parts_.size() - 1, parts_.back().size};
}

bool InstanceLog::has_untimed_lines() const {
  return std::any_of(parts_.begin(), parts_.end(), [](const LogPart& p) { return !p.fully_timed; });
}

Position InstanceLog::line_start_from(std::size_t part, std::uint64_t offset) const {
  const LogPart& p = parts_.at(part);
  char before = '\n';
  if (offset > 0 && offset < p.size) read_at(p, &before, 1, offset - 1);
  std::vector<char> buffer(kChunk);
  while (before != '\n' && offset < p.size) {
    std::size_t n = read_at(p, buffer.data(), std::min<std::uint64_t>(kChunk, p.size - offset), offset);
    if (n == 0) break;
    auto newline = std::find(buffer.begin(), buffer.begin() + static_cast<long>(n), '\n');
    if (newline != buffer.begin() + static_cast<long>(n)) {
      offset += static_cast<std::uint64_t>(newline - buffer.begin()) + 1;
      break;
    }
    offset += n;
  }
  if (offset >= p.size) {
    if (part + 1 < parts_.size()) return {part + 1, 0};
    return {part, p.size};
  }
  return {part, offset};
}

Position InstanceLog::since_start(std::int64_t since_unix_ms) const {
  for (std::size_t i = 0; i < parts_.size(); ++i)
    for (const auto& mark : parts_[i].marks)
      if (mark.unix_ms != log_index::kNoTime && mark.unix_ms >= since_unix_ms)
        return line_start_from(i, mark.offset);
  return end();
}

Position InstanceLog::tail_lines_start(std::size_t lines, Position lower) const {
  if (lines == 0) return end();
  std::size_t found = 0;
  std::vector<char> buffer(kChunk);
  for (std::size_t i = parts_.size(); i-- > lower.part;) {
    const LogPart& p = parts_[i];
    const std::uint64_t low = i == lower.part ? lower.offset : 0;
    if (low >= p.size) continue;
    // A line starts after each newline but the last byte's, and at `low`.
    std::uint64_t high = p.size;
    while (high > low) {
      const std::uint64_t from = high - std::min<std::uint64_t>(kChunk, high - low);
      const std::size_t n = read_at(p, buffer.data(), high - from, from);
      if (n != high - from) throw Error(p.path + " shrank while it was read");
      for (std::size_t k = n; k-- > 0;) {
        const std::uint64_t start = from + k + 1;
        if (buffer[k] == '\n' && start < p.size && ++found == lines) return {i, start};
      }
      high = from;
    }
    if (++found == lines) return {i, low};
  }
  return lower;
}

Position InstanceLog::start_of(const LogWindow& window) const {
  Position start{};
  if (window.since_unix_ms) start = since_start(*window.since_unix_ms);
  if (window.tail) start = std::max(start, tail_lines_start(*window.tail, start));
  return start;
}

LogPart InstanceLog::take_current() {
  if (!has_current_) return {};
  LogPart current = std::move(parts_.back());
  parts_.pop_back();
  has_current_ = false;
  return current;
}

LineReader::LineReader(const InstanceLog& log, Position from, bool unterminated_tail)
    : log_(log),
      unterminated_tail_(unterminated_tail),
      part_(from.part),
      read_offset_(from.offset),
      line_offset_(from.offset),
      tail_start_(log.end()) {}

bool LineReader::fill() {
  const LogPart& p = log_.parts()[part_];
  if (read_offset_ >= p.size) return false;
  buffer_.erase(0, begin_);
  scanned_ -= begin_;
  begin_ = 0;
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, p.size - read_offset_));
  const std::size_t old = buffer_.size();
  buffer_.resize(old + want);
  const std::size_t n = read_at(p, buffer_.data() + old, want, read_offset_);
  buffer_.resize(old + n);
  // A file that shrank (truncated by hand) ends here.
  read_offset_ = n == want ? read_offset_ + n : p.size;
  return n > 0;
}

void LineReader::next_part() {
  ++part_;
  read_offset_ = line_offset_ = 0;
  buffer_.clear();
  begin_ = scanned_ = 0;
}

std::optional<TimedLine> LineReader::next() {
  while (part_ < log_.parts().size()) {
    const LogPart& p = log_.parts()[part_];
    const std::size_t newline = buffer_.find('\n', std::max(scanned_, begin_));
    if (newline != std::string::npos) {
      TimedLine line{p.time_at(line_offset_), buffer_.substr(begin_, newline - begin_)};
      line_offset_ += newline + 1 - begin_;
      begin_ = scanned_ = newline + 1;
      return line;
    }
    scanned_ = buffer_.size();
    if (fill()) continue;
    const bool current = log_.has_current() && part_ + 1 == log_.parts().size();
    if (begin_ < buffer_.size()) {
      if (current && !unterminated_tail_) {
        tail_start_ = {part_, line_offset_};
        part_ = log_.parts().size();
        return std::nullopt;
      }
      TimedLine line{p.time_at(line_offset_), buffer_.substr(begin_)};
      next_part();
      return line;
    }
    next_part();
  }
  return std::nullopt;
}

std::uint64_t read_to_end(int fd, std::uint64_t offset, const std::string& path,
                          const std::function<void(std::string_view)>& chunk) {
  std::vector<char> buffer(kChunk);
  for (;;) {
    ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error::from_errno("read", path, errno);
    if (n == 0) return offset;
    offset += static_cast<std::uint64_t>(n);
    chunk({buffer.data(), static_cast<std::size_t>(n)});
  }
}

}  // namespace haco::ops::logfiles
