// Instance logs fed from a pipe: what the log writer does with each chunk
// and the time index it keeps beside each log,
// checked on real pipes and files (no container, no root).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/log_index.hpp"
#include "supervisor/instance_log.hpp"
#include "test_support.hpp"

namespace haco::supervisor {
namespace {

// A pipe as a container's output: written here, drained into a log.
struct TestPipe {
  TestPipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw Error::from_errno("pipe2", errno);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
  }
  void write(const std::string& text) const {
    ASSERT_EQ(::write(write_end.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  UniqueFd read_end, write_end;
};

std::string numbered_lines(int first, int count) {
  std::string text;
  for (int i = first; i < first + count; ++i) text += fmt::format("line-{:06d}\n", i);
  return text;
}

std::string read_all(const std::string& path) {
  return std::filesystem::exists(path) ? testing::read_text_file(path) : std::string();
}

std::uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

std::int64_t state_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class InstanceLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = dir_.path().string() + "/logs/web/web-1.log";
    prepare_instance_log(log_);
  }
  // Drains until the pipe is empty (the writer moves at most `budget` a call).
  DrainResult drain(InstanceLogFile& file, const TestPipe& pipe) {
    DrainResult total;
    for (;;) {
      auto r = drain_pipe_into_log(pipe.read_end.get(), file, peek_, 1 << 20);
      total.moved += r.moved;
      total.end_of_file = r.end_of_file;
      if (r.moved == 0) return total;
    }
  }

  testing::TempDir dir_;
  std::string log_;
  PipePeek peek_;
};

TEST(LogChunkPlan, WhatFitsIsWrittenWhole) {
  EXPECT_EQ(plan_log_chunk(0, 100, 50, ""), (LogChunkPlan{50, false}));
  // Up to the cap exactly.
  EXPECT_EQ(plan_log_chunk(50, 100, 50, ""), (LogChunkPlan{50, false}));
}

TEST(LogChunkPlan, ACrossingChunkIsCutAfterItsLastNewlineThatFits) {
  // 10 bytes of room: "ab\ncd\nefgh" fits, the rest of "efgh..." does not.
  EXPECT_EQ(plan_log_chunk(90, 100, 20, "ab\ncd\nefghXXXXX"), (LogChunkPlan{6, true}));
  // A newline past the room does not count.
  EXPECT_EQ(plan_log_chunk(90, 100, 20, "abcdefghij\n"), (LogChunkPlan{0, true}));
}

TEST(LogChunkPlan, ALineThatDoesNotFitStartsTheNextFile) {
  EXPECT_EQ(plan_log_chunk(95, 100, 20, "abcde"), (LogChunkPlan{0, true}));
  EXPECT_EQ(plan_log_chunk(100, 100, 1, ""), (LogChunkPlan{0, true}));
  // A log already past the cap (a smaller cap than the last run's).
  EXPECT_EQ(plan_log_chunk(150, 100, 10, ""), (LogChunkPlan{0, true}));
}

TEST(LogChunkPlan, ALineLongerThanTheCapIsCutAtTheCap) {
  EXPECT_EQ(plan_log_chunk(0, 100, 150, std::string(100, 'a')), (LogChunkPlan{100, true}));
}

TEST_F(InstanceLogTest, NothingIsLostBelowTheCap) {
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  std::string written;
  // More than a pipe holds, in rounds.
  for (int round = 0; round < 20; ++round) {
    std::string chunk = numbered_lines(round * 1000, 1000);
    pipe.write(chunk);
    written += chunk;
    drain(file, pipe);
  }
  EXPECT_EQ(read_all(log_), written);
  EXPECT_EQ(file.size(), written.size());
  EXPECT_FALSE(std::filesystem::exists(log_ + ".1"));
}

TEST_F(InstanceLogTest, RotatesAtALineBoundaryBeforeTheCap) {
  constexpr std::uint64_t kCap = 4096;
  InstanceLogFile file(log_, kCap);
  TestPipe pipe;
  std::string written;
  for (int round = 0; round < 10; ++round) {
    std::string chunk = numbered_lines(round * 100, 100);  // 1200 bytes
    pipe.write(chunk);
    written += chunk;
    drain(file, pipe);
    ASSERT_LE(file_size(log_), kCap);
  }
  std::string older = read_all(log_ + ".1"), current = read_all(log_);
  EXPECT_LE(older.size(), kCap);
  // Full up to the last whole line that fitted.
  EXPECT_GT(older.size(), kCap - 12);
  EXPECT_EQ(older.back(), '\n');
  // The two generations are the end of what was written, whole lines.
  std::string kept = older + current;
  ASSERT_LE(kept.size(), written.size());
  EXPECT_EQ(kept, written.substr(written.size() - kept.size()));
  EXPECT_EQ(kept.substr(0, 5), "line-");
}

TEST_F(InstanceLogTest, AChunkThatArrivesWholeIsSplitAtItsLastNewlineThatFits) {
  {
    std::ofstream(log_) << std::string(4000, 'o') << '\n';
  }
  InstanceLogFile file(log_, 4096);
  EXPECT_EQ(file.size(), 4001u);
  TestPipe pipe;
  pipe.write(numbered_lines(0, 20));  // 240 bytes, 95 of room
  drain(file, pipe);
  // 7 lines (84 bytes) fitted after what the log held; the rest starts anew.
  EXPECT_EQ(read_all(log_ + ".1"), std::string(4000, 'o') + "\n" + numbered_lines(0, 7));
  EXPECT_EQ(read_all(log_), numbered_lines(7, 13));
}

TEST_F(InstanceLogTest, ALineLongerThanTheCapIsCut) {
  InstanceLogFile file(log_, 4096);
  TestPipe pipe;
  pipe.write(std::string(5000, 'x') + "\ntail\n");
  drain(file, pipe);
  EXPECT_EQ(read_all(log_ + ".1"), std::string(4096, 'x'));
  EXPECT_EQ(read_all(log_), std::string(904, 'x') + "\ntail\n");
}

// A container may grow its pipe (F_SETPIPE_SZ): the look at what waits
// grows with it, and lines are still not cut.
TEST_F(InstanceLogTest, AGrownPipeIsStillSplitAtLines) {
  constexpr std::uint64_t kCap = 100000;
  InstanceLogFile file(log_, kCap);
  TestPipe pipe;
  ASSERT_GE(::fcntl(pipe.write_end.get(), F_SETPIPE_SZ, 256 * 1024), 256 * 1024);
  // 240000 bytes waiting at once: the first 100000 span more buffers than a
  // pipe of the default size has.
  std::string written = numbered_lines(0, 20000);
  pipe.write(written);
  drain(file, pipe);
  std::string older = read_all(log_ + ".1"), current = read_all(log_);
  EXPECT_LE(older.size(), kCap);
  EXPECT_GT(older.size(), kCap - 12);
  EXPECT_LE(current.size(), kCap);
  std::string kept = older + current;
  EXPECT_EQ(kept, written.substr(written.size() - kept.size()));
  EXPECT_EQ(kept.substr(0, 5), "line-");
}

TEST_F(InstanceLogTest, EndOfFileOnlyOnceEveryWriterIsGoneAndAllIsWritten) {
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  EXPECT_FALSE(drain(file, pipe).end_of_file);
  pipe.write("last words\n");
  pipe.write_end.reset();
  auto r = drain(file, pipe);
  EXPECT_TRUE(r.end_of_file);
  EXPECT_EQ(read_all(log_), "last words\n");
}

TEST_F(InstanceLogTest, APeekLeavesTheBytesInThePipe) {
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  pipe.write("abcdef\n");
  EXPECT_EQ(peek_.look(pipe.read_end.get(), 3), "abc");
  EXPECT_EQ(peek_.look(pipe.read_end.get(), 100), "abcdef\n");
  drain(file, pipe);
  EXPECT_EQ(read_all(log_), "abcdef\n");
}

TEST_F(InstanceLogTest, DiscardedBytesAreCountedAndEndOfFileSeen) {
  TestPipe pipe;
  pipe.write("dropped\n");
  auto r = discard_pipe(pipe.read_end.get(), 1 << 20);
  EXPECT_EQ(r.moved, 8u);
  EXPECT_FALSE(r.end_of_file);
  pipe.write_end.reset();
  EXPECT_TRUE(discard_pipe(pipe.read_end.get(), 1 << 20).end_of_file);
}

TEST_F(InstanceLogTest, ASymlinkInTheLogsPlaceIsRefused) {
  std::filesystem::remove(log_);
  std::filesystem::create_symlink(dir_.file("elsewhere", "x"), log_);
  try {
    InstanceLogFile file(log_, 4096);
    FAIL() << "a symlink was followed";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), ELOOP) << e.what();
    EXPECT_EQ(e.path(), log_) << e.what();
  }
}

TEST_F(InstanceLogTest, LogsAreForRootOnly) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path().string() + "/logs/web").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // A log an older run made readable is tightened.
  ASSERT_EQ(::chmod(log_.c_str(), 0644), 0);
  prepare_instance_log(log_);
  ASSERT_EQ(::stat(log_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Both generations after a rotation, whatever the umask.
  ::umask(0);
  InstanceLogFile file(log_, 4096);
  TestPipe pipe;
  pipe.write(numbered_lines(0, 400));
  drain(file, pipe);
  ::umask(022);
  for (const auto& path : {log_, log_ + ".1", log_ + ".idx", log_ + ".1.idx"}) {
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << path;
  }
}

// The time index (haco/log_index.hpp) as the writer leaves it.
class LogIndexTest : public InstanceLogTest {
 protected:
  std::optional<std::vector<log_index::TimeMark>> marks(const std::string& log) {
    UniqueFd dir(::open(std::filesystem::path(log).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return log_index::read(dir.get(), std::filesystem::path(log).filename().string() + ".idx",
                           std::filesystem::exists(log) ? file_size(log) : 0);
  }
  // Moves what waits in `pipe` at the wall-clock time `now_ms`.
  void append(InstanceLogFile& file, const TestPipe& pipe, const std::string& text, std::int64_t now_ms) {
    pipe.write(text);
    std::size_t moved = 0;
    while (moved < text.size()) moved += file.append_from_pipe(pipe.read_end.get(), text.size() - moved, now_ms);
  }
  using Marks = std::vector<log_index::TimeMark>;
};

TEST_F(LogIndexTest, AChunkIsMarkedWhenTheLastMarkIsAnIntervalOld) {
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  append(file, pipe, "a\n", 10'000);
  append(file, pipe, "bb\n", 10'999);  // within the interval: no record
  append(file, pipe, "ccc\n", 11'000);
  append(file, pipe, "d\n", 50'000);  // the first bytes after a quiet spell
  EXPECT_EQ(marks(log_), (Marks{{0, 10'000}, {5, 11'000}, {9, 50'000}}));
  EXPECT_EQ(file_size(log_ + ".idx"), log_index::kHeaderSize + 3 * log_index::kRecordSize);
}

TEST_F(LogIndexTest, AClockSetBackStartsARecord) {
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  append(file, pipe, "a\n", 10'000);
  append(file, pipe, "b\n", 9'500);
  EXPECT_EQ(marks(log_), (Marks{{0, 10'000}, {2, 9'500}}));
}

TEST_F(LogIndexTest, DrainingMarksWithTheWallClock) {
  const auto before = state_now_ms();
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  pipe.write("hello\n");
  drain(file, pipe);
  const auto after = state_now_ms();
  auto found = marks(log_);
  ASSERT_TRUE(found.has_value());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->front().offset, 0u);
  EXPECT_GE(found->front().unix_ms, before);
  EXPECT_LE(found->front().unix_ms, after);
}

TEST_F(LogIndexTest, TheIndexRotatesWithItsLog) {
  InstanceLogFile file(log_, 4096);
  TestPipe pipe;
  append(file, pipe, numbered_lines(0, 300), 1'000);  // 3600 bytes
  file.rotate();
  append(file, pipe, numbered_lines(300, 10), 5'000);
  EXPECT_EQ(marks(log_ + ".1"), (Marks{{0, 1'000}}));
  EXPECT_EQ(marks(log_), (Marks{{0, 5'000}}));
  // A rotation with no index beside the log leaves no stale <log>.1.idx.
  std::filesystem::remove(log_ + ".idx");
  file.rotate();
  EXPECT_FALSE(std::filesystem::exists(log_ + ".1.idx"));
}

TEST_F(LogIndexTest, ALogFromBeforeIndexesIsMarkedFromItsEnd) {
  { std::ofstream(log_) << "old line\n"; }
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  append(file, pipe, "new line\n", 7'000);
  EXPECT_EQ(marks(log_), (Marks{{9, 7'000}}));
}

TEST_F(LogIndexTest, AReopenedLogGoesOnWithItsIndexAndCutsATornRecord) {
  {
    InstanceLogFile file(log_, 1 << 20);
    TestPipe pipe;
    append(file, pipe, "one\n", 1'000);
  }
  { std::ofstream(log_ + ".idx", std::ios::app) << "torn"; }
  InstanceLogFile file(log_, 1 << 20);
  TestPipe pipe;
  append(file, pipe, "two\n", 1'500);  // within the interval of the record kept
  append(file, pipe, "three\n", 3'000);
  EXPECT_EQ(marks(log_), (Marks{{0, 1'000}, {8, 3'000}}));
  EXPECT_EQ(file_size(log_ + ".idx"), log_index::kHeaderSize + 2 * log_index::kRecordSize);
}

TEST_F(LogIndexTest, AFullIndexRotatesItsLogAtALine) {
  // 4096 / 16 = 256 bytes of records: 16 of them.
  InstanceLogFile file(log_, 4096);
  TestPipe pipe;
  for (int i = 0; i < 16; ++i) append(file, pipe, "x\n", 1'000 + i * 1'000);
  EXPECT_TRUE(file.index_full());
  pipe.write("next\n");
  drain(file, pipe);
  EXPECT_EQ(read_all(log_ + ".1").size(), 32u);
  EXPECT_EQ(marks(log_ + ".1")->size(), 16u);
  EXPECT_EQ(read_all(log_), "next\n");
  EXPECT_EQ(marks(log_)->size(), 1u);
}

}  // namespace
}  // namespace haco::supervisor
