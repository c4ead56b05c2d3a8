// Instance logs: one file per instance, fed from the container's output pipe
// by splice(), capped in size by renaming a full file to <log>.1.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/log_index.hpp"
#include "supervisor/instance_log.hpp"

namespace haco::supervisor {
namespace {

// What read() takes at once when bytes are dropped.
constexpr std::size_t kDiscardChunk = 64 * 1024;
// The index holds at most cap / kIndexShare bytes of records.
constexpr std::uint64_t kIndexShare = 16;

std::int64_t wall_clock_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return std::int64_t(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

void write_all_at(int fd, std::string_view bytes, std::uint64_t offset, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error::from_errno("write", path, n < 0 ? errno : EIO);
    bytes.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

// Whether `pipe`, found empty, has no writer left: POLLHUP without POLLIN.
// nullopt when bytes arrived after all.
std::optional<bool> empty_pipe_ended(int pipe) {
  pollfd p{pipe, POLLIN, 0};
  while (::poll(&p, 1, 0) < 0)
    if (errno != EINTR) throw Error::from_errno("poll", "a container's output pipe", errno);
  if (p.revents & POLLIN) return std::nullopt;
  return (p.revents & POLLHUP) != 0;
}

std::size_t bytes_waiting(int pipe) {
  int waiting = 0;
  check_sys(::ioctl(pipe, FIONREAD, &waiting), "ioctl(FIONREAD)", "a container's output pipe");
  return static_cast<std::size_t>(std::max(waiting, 0));
}

}  // namespace

void prepare_instance_log(const std::string& path) {
  layout::make_private_directory(std::filesystem::path(path).parent_path());
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  check_sys(fd.get(), "open", path);
  // What an init writes is for root only (a log made by an older run was 0640).
  check_sys(::fchmod(fd.get(), 0600), "fchmod", path);
}

LogChunkPlan plan_log_chunk(std::uint64_t size, std::uint64_t max_bytes, std::size_t available,
                            std::string_view head) {
  const std::uint64_t space = size < max_bytes ? max_bytes - size : 0;
  if (available <= space) return {available, false};
  const std::size_t fits = static_cast<std::size_t>(std::min<std::uint64_t>(space, available));
  const std::string_view view = head.substr(0, std::min(head.size(), fits));
  if (auto newline = view.rfind('\n'); newline != std::string_view::npos) return {newline + 1, true};
  // The line that starts here does not fit: it starts the next file.
  if (size > 0) return {0, true};
  // A line longer than the whole cap: cut at the cap.
  return {view.empty() ? fits : view.size(), true};
}

InstanceLogFile::InstanceLogFile(std::string path, std::uint64_t max_bytes)
    : path_(std::move(path)), max_bytes_(max_bytes) {
  std::filesystem::path p(path_);
  name_ = p.filename();
  std::string dir = p.parent_path();
  dir_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  check_sys(dir_.get(), "open", dir);
  open_file();
}

void InstanceLogFile::open_file() {
  // O_NONBLOCK: a FIFO put in the log's place cannot hold the writer up.
  UniqueFd file(::openat(dir_.get(), name_.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  check_sys(file.get(), "open", path_);
  struct stat st {};
  check_sys(::fstat(file.get(), &st), "fstat", path_);
  if (!S_ISREG(st.st_mode)) throw Error(path_ + " is not a regular file");
  size_ = static_cast<std::uint64_t>(st.st_size);
  file_ = std::move(file);
  try {
    open_index();
  } catch (const Error& e) {
    index_.reset();
    index_error_ = e.what();
  }
}

void InstanceLogFile::open_index() {
  index_.reset();
  last_mark_ms_.reset();
  index_size_ = 0;
  const std::string name = name_ + ".idx";
  const std::string path = log_index::index_path(path_);
  UniqueFd index(::openat(dir_.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  check_sys(index.get(), "open", path);
  struct stat st {};
  check_sys(::fstat(index.get(), &st), "fstat", path);
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  // An empty log starts an empty index; otherwise what is there goes on when
  // it is an index of this log (a log from before indexes gets one that
  // starts at its current end: the bytes before have no time).
  std::optional<std::vector<log_index::TimeMark>> marks;
  if (size_ > 0) marks = log_index::read(dir_.get(), name, size_);
  if (!marks) {
    if (st.st_size > 0) check_sys(::ftruncate(index.get(), 0), "ftruncate", path);
    write_all_at(index.get(), log_index::header(), 0, path);
    marks.emplace();
  } else if (const std::uint64_t whole = log_index::kHeaderSize + marks->size() * log_index::kRecordSize;
             static_cast<std::uint64_t>(st.st_size) != whole) {
    // A torn last record, or records past the log's end, are cut off.
    check_sys(::ftruncate(index.get(), static_cast<off_t>(whole)), "ftruncate", path);
  }
  index_size_ = log_index::kHeaderSize + marks->size() * log_index::kRecordSize;
  if (!marks->empty()) last_mark_ms_ = marks->back().unix_ms;
  index_ = std::move(index);
}

bool InstanceLogFile::index_full() const {
  // At least one record: a log whose cap is too small for even that rotates
  // at every chunk rather than never writing.
  return index_ && index_size_ > log_index::kHeaderSize &&
         index_size_ - log_index::kHeaderSize + log_index::kRecordSize > max_bytes_ / kIndexShare;
}

void InstanceLogFile::note_time(std::uint64_t offset, std::int64_t now_unix_ms) {
  if (!index_ || index_full()) return;
  // A clock set back starts a new record too: the times of a log go forward.
  if (last_mark_ms_ && now_unix_ms >= *last_mark_ms_ && now_unix_ms - *last_mark_ms_ < log_index::kIntervalMs)
    return;
  try {
    write_all_at(index_.get(), log_index::encode({offset, now_unix_ms}), index_size_, log_index::index_path(path_));
    index_size_ += log_index::kRecordSize;
    last_mark_ms_ = now_unix_ms;
  } catch (const Error& e) {
    // A record half written is cut off when the index is opened again.
    index_.reset();
    index_error_ = e.what();
  }
}

std::size_t InstanceLogFile::append_from_pipe(int pipe, std::size_t bytes, std::int64_t now_unix_ms) {
  if (!file_) open_file();
  // An explicit offset (splice refuses O_APPEND files): the end as this
  // writer knows it, the file's size when it was opened plus what it wrote.
  const std::uint64_t start = size_;
  loff_t offset = static_cast<loff_t>(size_);
  for (;;) {
    ssize_t n = ::splice(pipe, nullptr, file_.get(), &offset, bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n >= 0) {
      size_ = static_cast<std::uint64_t>(offset);
      // After the bytes: a record never points past the log's end.
      if (n > 0) note_time(start, now_unix_ms);
      return static_cast<std::size_t>(n);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    throw Error::from_errno("splice", path_, errno);
  }
}

void InstanceLogFile::rotate() {
  const std::string rotated = name_ + ".1";
  // A log removed meanwhile has nothing to keep: a new one starts.
  if (::renameat(dir_.get(), name_.c_str(), dir_.get(), rotated.c_str()) != 0 && errno != ENOENT)
    throw Error::from_errno("rename", path_ + " -> " + path_ + ".1", errno);
  // The index follows its log; without one, the old generation's index must
  // not stay beside the new <log>.1.
  const std::string index = name_ + ".idx", rotated_index = rotated + ".idx";
  if (::renameat(dir_.get(), index.c_str(), dir_.get(), rotated_index.c_str()) != 0) {
    if (errno != ENOENT) index_error_ = Error::from_errno("rename", path_ + ".idx", errno).what();
    ::unlinkat(dir_.get(), rotated_index.c_str(), 0);
  }
  file_.reset();
  index_.reset();
  size_ = 0;
  // When this fails the next append tries again.
  open_file();
}

PipePeek::PipePeek() {
  int fds[2];
  check_sys(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2", "the log writer's peek pipe");
  read_end_.reset(fds[0]);
  write_end_.reset(fds[1]);
}

std::string_view PipePeek::look(int pipe, std::size_t bytes) {
  // tee() copies whole buffers of `pipe` (a container may have grown it with
  // F_SETPIPE_SZ): this pipe gets as much room, so that it takes all `bytes`.
  const long wanted = ::fcntl(pipe, F_GETPIPE_SZ);
  if (wanted > ::fcntl(write_end_.get(), F_GETPIPE_SZ))
    check_sys(::fcntl(write_end_.get(), F_SETPIPE_SZ, static_cast<int>(wanted)), "fcntl(F_SETPIPE_SZ)",
              "the log writer's peek pipe");
  ssize_t copied;
  while ((copied = ::tee(pipe, write_end_.get(), bytes, SPLICE_F_NONBLOCK)) < 0) {
    if (errno == EAGAIN) return {};
    if (errno != EINTR) throw Error::from_errno("tee", "a container's output pipe", errno);
  }
  buffer_.resize(static_cast<std::size_t>(copied));
  std::size_t got = 0;
  while (got < buffer_.size()) {
    ssize_t n = ::read(read_end_.get(), buffer_.data() + got, buffer_.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error::from_errno("read", "the log writer's peek pipe", n < 0 ? errno : EIO);
    got += static_cast<std::size_t>(n);
  }
  return {buffer_.data(), buffer_.size()};
}

DrainResult drain_pipe_into_log(int pipe, InstanceLogFile& log, PipePeek& peek, std::uint64_t budget) {
  DrainResult result;
  bool looked_again = false;
  // One reading of the clock per drain (the vDSO: no system call); a drain
  // takes far less than the index's interval.
  const std::int64_t now_ms = wall_clock_ms();
  while (result.moved < budget) {
    const std::size_t available = bytes_waiting(pipe);
    if (available == 0) {
      auto ended = empty_pipe_ended(pipe);
      // Bytes that arrived meanwhile are counted once more; after that they
      // wait for the next readiness.
      if (!ended && !looked_again) {
        looked_again = true;
        continue;
      }
      result.end_of_file = ended.value_or(false);
      return result;
    }
    // A full index counts as a full log.
    const std::uint64_t size = log.index_full() ? std::max(log.size(), log.max_bytes()) : log.size();
    const std::uint64_t space = size < log.max_bytes() ? log.max_bytes() - size : 0;
    std::string_view head;
    if (available > space && space > 0)
      head = peek.look(pipe, static_cast<std::size_t>(std::min<std::uint64_t>(space, available)));
    const LogChunkPlan plan = plan_log_chunk(size, log.max_bytes(), available, head);
    std::size_t moved = 0;
    while (moved < plan.write_now) {
      std::size_t n = log.append_from_pipe(pipe, plan.write_now - moved, now_ms);
      if (n == 0) break;
      moved += n;
    }
    result.moved += moved;
    // Bytes counted but not there (nothing else reads this pipe): look again
    // at the next readiness rather than spin.
    if (moved < plan.write_now) return result;
    if (plan.rotate_after) log.rotate();
  }
  return result;
}

DrainResult discard_pipe(int pipe, std::uint64_t budget) {
  DrainResult result;
  char chunk[kDiscardChunk];
  while (result.moved < budget) {
    ssize_t n = ::read(pipe, chunk, sizeof(chunk));
    if (n > 0) {
      result.moved += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) {
      result.end_of_file = true;
      return result;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return result;
    throw Error::from_errno("read", "a container's output pipe", errno);
  }
  return result;
}

}  // namespace haco::supervisor
