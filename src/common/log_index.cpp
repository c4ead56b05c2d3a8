// The time index of instance logs: its byte format and its reader.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "haco/error.hpp"
#include "haco/log_index.hpp"
#include "haco/unique_fd.hpp"

namespace haco::log_index {
namespace {

constexpr char kMagic[8] = {'H', 'A', 'C', 'O', 'L', 'I', 'D', 'X'};

void put_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= std::uint64_t(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return value;
}

}  // namespace

std::string header() {
  std::string out(kMagic, sizeof(kMagic));
  put_le(out, kVersion, 4);
  put_le(out, kRecordSize, 4);
  return out;
}

std::string encode(const TimeMark& mark) {
  std::string out;
  out.reserve(kRecordSize);
  put_le(out, mark.offset, 8);
  put_le(out, static_cast<std::uint64_t>(mark.unix_ms), 8);
  return out;
}

bool is_header(std::string_view bytes) {
  return bytes.size() >= kHeaderSize && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0 &&
         get_le(bytes, 8, 4) == kVersion && get_le(bytes, 12, 4) == kRecordSize;
}

TimeMark decode(std::string_view record) {
  return {get_le(record, 0, 8), static_cast<std::int64_t>(get_le(record, 8, 8))};
}

std::optional<std::vector<TimeMark>> parse(std::string_view bytes, std::uint64_t log_size) {
  if (!is_header(bytes)) return std::nullopt;
  std::vector<TimeMark> marks;
  for (std::size_t at = kHeaderSize; at + kRecordSize <= bytes.size(); at += kRecordSize) {
    TimeMark mark = decode(bytes.substr(at, kRecordSize));
    if (mark.offset > log_size || (!marks.empty() && mark.offset < marks.back().offset)) break;
    marks.push_back(mark);
  }
  return marks;
}

std::optional<std::vector<TimeMark>> read(int dir_fd, const std::string& name, std::uint64_t log_size) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ELOOP) return std::nullopt;
    throw Error::from_errno("open", name, errno);
  }
  struct stat st {};
  check_sys(::fstat(fd.get(), &st), "fstat", name);
  if (!S_ISREG(st.st_mode)) return std::nullopt;
  std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::pread(fd.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error::from_errno("read", name, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  return parse(bytes, log_size);
}

}  // namespace haco::log_index
