// `logs` over real files without root or containers: the time index's
// format, --since, windows of one log (tail, since, <log>.1, a log without an
// index), the merge of a fleet's instances, and following (new bytes, a
// rotation, an instance added, the fleet taken down, a stop).
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/log_index.hpp"
#include "haco/ops_logs.hpp"
#include "haco/state.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using log_index::kNoTime;
using log_index::TimeMark;

// A log written by hand: `text`, and an index of `marks` (none: no index).
void write_log(const std::string& path, const std::string& text, std::optional<std::vector<TimeMark>> marks) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
  if (!marks) return;
  std::string index = log_index::header();
  for (const auto& m : *marks) index += log_index::encode(m);
  std::ofstream(log_index::index_path(path), std::ios::binary) << index;
}

void append_to(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::app) << text;
}

std::vector<std::string> texts(const std::vector<TimedLine>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back(l.text);
  return out;
}

using Lines = std::vector<std::string>;

TEST(LogIndexFormat, RecordsRoundTripAndATornOneIsLeftOut) {
  std::string bytes = log_index::header() + log_index::encode({0, 1'700'000'000'000}) +
                      log_index::encode({42, 1'700'000'001'000}) + "torn";
  auto marks = log_index::parse(bytes, 100);
  ASSERT_TRUE(marks.has_value());
  EXPECT_EQ(*marks, (std::vector<TimeMark>{{0, 1'700'000'000'000}, {42, 1'700'000'001'000}}));
  EXPECT_EQ(log_index::header().size(), log_index::kHeaderSize);
  EXPECT_EQ(log_index::encode({1, 2}).size(), log_index::kRecordSize);
}

TEST(LogIndexFormat, MarksPastTheLogOrBackwardsAreNotTheLogs) {
  std::string bytes = log_index::header() + log_index::encode({0, 1}) + log_index::encode({50, 2}) +
                      log_index::encode({10, 3});
  EXPECT_EQ(*log_index::parse(bytes, 60), (std::vector<TimeMark>{{0, 1}, {50, 2}}));
  EXPECT_EQ(*log_index::parse(bytes, 20), (std::vector<TimeMark>{{0, 1}}));
  EXPECT_FALSE(log_index::parse("not an index at all", 10).has_value());
  EXPECT_FALSE(log_index::parse("", 10).has_value());
}

TEST(ParseSince, DurationsCountBackFromNow) {
  const std::int64_t now = 1'800'000'000'000;
  EXPECT_EQ(parse_since("90s", now), now - 90'000);
  EXPECT_EQ(parse_since("10m", now), now - 600'000);
  EXPECT_EQ(parse_since("2h", now), now - 7'200'000);
  EXPECT_EQ(parse_since("1d", now), now - 86'400'000);
  EXPECT_EQ(parse_since("1h30m", now), now - 5'400'000);
  EXPECT_EQ(parse_since("250ms", now), now - 250);
  EXPECT_EQ(parse_since("0s", now), now);
}

TEST(ParseSince, Rfc3339TimesWithTheirOffsets) {
  // 2026-11-30T13:00:00Z = 1796043600 s.
  EXPECT_EQ(parse_since("2026-11-30T13:00:00Z", 0), 1'796'043'600'000);
  EXPECT_EQ(parse_since("2026-11-30T22:00:00+09:00", 0), 1'796'043'600'000);
  EXPECT_EQ(parse_since("2026-11-30T08:30:00-04:30", 0), 1'796'043'600'000);
  EXPECT_EQ(parse_since("2026-11-30t13:00:00.25z", 0), 1'796'043'600'250);
  EXPECT_EQ(parse_since("2026-11-30 13:00:00Z", 0), 1'796'043'600'000);
}

TEST(ParseSince, AnythingElseIsBadInput) {
  for (const char* bad : {"", "5", "5x", "m", "-5s", "10m-", "2026-11-30", "2026-11-30T13:00:00",
                          "2026-02-30T13:00:00Z", "2026-11-30T25:00:00Z", "2026-11-30T13:00:00+9", "yesterday"})
    EXPECT_THROW(parse_since(bad, 1'000'000), InputError) << bad;
}

class LogFilesTest : public ::testing::Test {
 protected:
  haco::testing::TempDir dir_;  // before log_, made from it
  std::string log_ = (dir_.path() / "logs" / "web-1.log").string();
};

TEST_F(LogFilesTest, EveryLineGetsTheTimeOfTheMarkItStartsAfter) {
  // "a\n" at 1000, "b\n" and "c\n" at 2000 (one chunk), "d\n" at 5000.
  write_log(log_, "a\nb\nc\nd\n", std::vector<TimeMark>{{0, 1000}, {2, 2000}, {6, 5000}});
  auto lines = read_instance_log(log_, {});
  EXPECT_EQ(lines, (std::vector<TimedLine>{{1000, "a"}, {2000, "b"}, {2000, "c"}, {5000, "d"}}));
}

TEST_F(LogFilesTest, TailTakesTheLastLinesAcrossTheRotatedGeneration) {
  write_log(log_ + ".1", "1\n2\n3\n", std::vector<TimeMark>{{0, 1000}});
  write_log(log_, "4\n5\n", std::vector<TimeMark>{{0, 2000}});
  EXPECT_EQ(texts(read_instance_log(log_, {})), (Lines{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 1})), (Lines{"5"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 3})), (Lines{"3", "4", "5"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 100})), (Lines{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 0})), Lines{});
}

TEST_F(LogFilesTest, TailCountsALastLineWithoutNewlineAndLongLines) {
  std::string long_line(200'000, 'x');  // longer than a read chunk
  write_log(log_, "first\n" + long_line + "\nlast without newline", std::vector<TimeMark>{{0, 1}});
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 2})), (Lines{long_line, "last without newline"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 3})), (Lines{"first", long_line, "last without newline"}));
}

TEST_F(LogFilesTest, SinceStartsAtTheFirstLineMarkedAtOrAfterIt) {
  // The chunk at 3000 starts inside "bb…": that line began at 2000 and is left out.
  write_log(log_ + ".1", "old\n", std::vector<TimeMark>{{0, 1000}});
  write_log(log_, "a\nbbbb\ncc\n", std::vector<TimeMark>{{0, 2000}, {4, 3000}, {7, 4000}});
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 1000})), (Lines{"old", "a", "bbbb", "cc"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 1500})), (Lines{"a", "bbbb", "cc"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 2500})), (Lines{"cc"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 4000})), (Lines{"cc"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 4001})), Lines{});
  // Both: the last line of those since.
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 1, .since_unix_ms = 1000})), (Lines{"cc"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 10, .since_unix_ms = 1500})), (Lines{"a", "bbbb", "cc"}));
}

TEST_F(LogFilesTest, ALogWithoutAnIndexHasNoTimesAndIsOlderThanAnySince) {
  write_log(log_, "legacy 1\nlegacy 2\n", std::nullopt);
  auto lines = read_instance_log(log_, {});
  EXPECT_EQ(lines, (std::vector<TimedLine>{{kNoTime, "legacy 1"}, {kNoTime, "legacy 2"}}));
  EXPECT_EQ(texts(read_instance_log(log_, {.tail = 1})), (Lines{"legacy 2"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 0})), Lines{});
  // The writer went on with an index from the log's end.
  append_to(log_, "new\n");
  write_log(log_ + ".tmp", "", std::vector<TimeMark>{{18, 9000}});
  fs::rename(log_ + ".tmp.idx", log_ + ".idx");
  EXPECT_EQ(read_instance_log(log_, {}).back(), (TimedLine{9000, "new"}));
  EXPECT_EQ(texts(read_instance_log(log_, {.since_unix_ms = 0})), (Lines{"new"}));
}

TEST_F(LogFilesTest, NoLogAtAllIsNoLines) { EXPECT_EQ(read_instance_log(log_, {}), std::vector<TimedLine>{}); }

// Lines and notices as the sink gets them; waits without polling.
class RecordingSink : public LogSink {
 public:
  void instance(std::string_view name) override {
    std::lock_guard lock(mutex_);
    instances_.emplace_back(name);
  }
  void line(std::string_view instance, std::string_view text) override {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::string(instance) + " | " + std::string(text));
    changed_.notify_all();
  }
  void notice(std::string_view text) override {
    std::lock_guard lock(mutex_);
    notices_.emplace_back(text);
    changed_.notify_all();
  }
  void flush() override {}

  // Waits until `count` lines arrived (5 s at most); the lines then.
  Lines wait_for_lines(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 5s, [&] { return lines_.size() >= count; });
    return lines_;
  }
  Lines lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  Lines notices() {
    std::lock_guard lock(mutex_);
    return notices_;
  }
  Lines instances() {
    std::lock_guard lock(mutex_);
    return instances_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  Lines lines_, notices_, instances_;
};

class FleetLogsTest : public ::testing::Test {
 protected:
  std::string state_root() const { return (dir_.path() / "state").string(); }
  std::string data_root() const { return (dir_.path() / "data").string(); }
  state::FleetPaths paths() const { return {state_root(), data_root(), "web"}; }
  std::string log_of(const std::string& name) const { return paths().instance_log(name); }

  void add_instance(const std::string& name, std::uint16_t port) {
    state::InstanceRecord r;
    r.spec.port = port;
    r.spec.container.name = name;
    r.log_path = log_of(name);
    fleet_.instances.push_back(r);
  }
  void record() {
    fleet_.fleet = "web";
    paths().make_directories();
    state::save_state(paths(), fleet_);
  }
  LogsRequest request() const {
    LogsRequest r;
    r.state_root = state_root();
    r.data_root = data_root();
    return r;
  }

  state::FleetState fleet_;
  haco::testing::TempDir dir_;
};

TEST_F(FleetLogsTest, InstancesAreMergedInTimeOrderWithPaddedPrefixes) {
  add_instance("web-1", 10001);
  add_instance("web-long-2", 10002);
  record();
  write_log(log_of("web-1"), "one a\none b\none c\n", std::vector<TimeMark>{{0, 1000}, {6, 3000}, {12, 5000}});
  write_log(log_of("web-long-2"), "two a\ntwo b\n", std::vector<TimeMark>{{0, 2000}, {6, 3000}});
  std::ostringstream out, err;
  PrefixedLogStream sink(out, err, true);
  auto result = logs(request(), sink);
  EXPECT_EQ(result.end, LogsResult::End::read);
  // At 3000 both wrote: the instance listed first goes first.
  EXPECT_EQ(out.str(),
            "web-1      | one a\n"
            "web-long-2 | two a\n"
            "web-1      | one b\n"
            "web-long-2 | two b\n"
            "web-1      | one c\n");
  EXPECT_EQ(err.str(), "");

  std::ostringstream bare;
  PrefixedLogStream no_prefix(bare, err, false);
  auto r = request();
  r.window.tail = 1;
  logs(r, no_prefix);
  EXPECT_EQ(bare.str(), "two b\none c\n");
}

TEST_F(FleetLogsTest, ControlCharactersOfALineAreEscaped) {
  add_instance("web-1", 10001);
  record();
  write_log(log_of("web-1"), "\x1b[31mred\x1b[0m\rforged\n", std::vector<TimeMark>{{0, 1000}});
  std::ostringstream out, err;
  PrefixedLogStream sink(out, err, true);
  logs(request(), sink);
  EXPECT_EQ(out.str(), "web-1 | \\x1b[31mred\\x1b[0m\\x0dforged\n");
}

TEST_F(FleetLogsTest, PortsChooseInstancesAndAnUnknownPortIsBadInput) {
  add_instance("web-1", 10001);
  add_instance("web-2", 10002);
  record();
  write_log(log_of("web-1"), "one\n", std::vector<TimeMark>{{0, 1000}});
  write_log(log_of("web-2"), "two\n", std::vector<TimeMark>{{0, 1000}});
  RecordingSink sink;
  auto r = request();
  r.ports = "10002";
  logs(r, sink);
  EXPECT_EQ(sink.lines(), (Lines{"web-2 | two"}));
  r.ports = "10002,10009";
  try {
    logs(r, sink);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("10009"), std::string::npos) << e.what();
  }
  r.ports = "";
  r.fleet = "api";
  EXPECT_THROW(logs(r, sink), InputError);
}

TEST_F(FleetLogsTest, SinceSaysWhichLogsHaveLinesWithoutATime) {
  add_instance("web-1", 10001);
  add_instance("web-2", 10002);
  record();
  write_log(log_of("web-1"), "legacy\n", std::nullopt);
  write_log(log_of("web-2"), "timed\n", std::vector<TimeMark>{{0, 5000}});
  RecordingSink sink;
  auto r = request();
  r.window.since_unix_ms = 1000;
  logs(r, sink);
  EXPECT_EQ(sink.lines(), (Lines{"web-2 | timed"}));
  ASSERT_EQ(sink.notices().size(), 1u);
  EXPECT_NE(sink.notices()[0].find("web-1: lines written before its log had a time index"), std::string::npos);
  // Without --since they come first, as the oldest.
  RecordingSink all;
  logs(request(), all);
  EXPECT_EQ(all.lines(), (Lines{"web-1 | legacy", "web-2 | timed"}));
}

// logs -f on a thread, stopped through an eventfd as Ctrl-C's signalfd would.
class FollowTest : public FleetLogsTest {
 protected:
  void start(LogsRequest r) {
    stop_.reset(::eventfd(0, EFD_CLOEXEC));
    ASSERT_TRUE(stop_);
    r.follow = true;
    r.stop_fd = stop_.get();
    following_ = std::async(std::launch::async, [this, r] { return logs(r, sink_); });
  }
  LogsResult stop() {
    std::uint64_t one = 1;
    EXPECT_EQ(::write(stop_.get(), &one, sizeof(one)), 8);
    EXPECT_EQ(following_.wait_for(5s), std::future_status::ready);
    return following_.get();
  }
  void TearDown() override {
    if (following_.valid()) stop();
  }

  RecordingSink sink_;
  UniqueFd stop_;
  std::future<LogsResult> following_;
};

TEST_F(FollowTest, NewBytesArePrintedAsTheyArriveAndAHalfLineWaitsForItsEnd) {
  add_instance("web-1", 10001);
  record();
  write_log(log_of("web-1"), "before\nhalf", std::vector<TimeMark>{{0, 1000}});
  start(request());
  EXPECT_EQ(sink_.wait_for_lines(1), (Lines{"web-1 | before"}));
  append_to(log_of("web-1"), " and end\nnext\n");
  EXPECT_EQ(sink_.wait_for_lines(3), (Lines{"web-1 | before", "web-1 | half and end", "web-1 | next"}));
  EXPECT_EQ(stop().end, LogsResult::End::stopped);
}

TEST_F(FollowTest, ARotatedLogIsReadToItsEndThenFollowedByName) {
  add_instance("web-1", 10001);
  record();
  const std::string log = log_of("web-1");
  write_log(log, "first\n", std::vector<TimeMark>{{0, 1000}});
  auto r = request();
  r.window.tail = 1;
  start(r);
  EXPECT_EQ(sink_.wait_for_lines(1), (Lines{"web-1 | first"}));
  // As the writer rotates: the old file's last bytes, rename, a new file.
  // The rename and the creation each wake the follower; nothing may be lost
  // or repeated whatever it sees between them.
  Lines expected{"web-1 | first"};
  for (int round = 0; round < 20; ++round) {
    append_to(log, "old " + std::to_string(round) + "\n");
    fs::rename(log, log + ".1");
    write_log(log, "new " + std::to_string(round) + "\n", std::vector<TimeMark>{{0, 2000}});
    expected.push_back("web-1 | old " + std::to_string(round));
    expected.push_back("web-1 | new " + std::to_string(round));
    // A log is rotated once it holds the cap (4 KiB at least), not faster
    // than a follower opens it.
    ASSERT_EQ(sink_.wait_for_lines(expected.size()), expected);
  }
  stop();
  EXPECT_EQ(sink_.lines(), expected);
}

TEST_F(FollowTest, AnInstanceAddedLaterIsFollowedFromItsStart) {
  add_instance("web-1", 10001);
  record();
  write_log(log_of("web-1"), "one\n", std::vector<TimeMark>{{0, 1000}});
  // A log of a name used before: what it held when logs started is old.
  write_log(log_of("web-3"), "from a previous fleet\n", std::vector<TimeMark>{{0, 500}});
  start(request());
  EXPECT_EQ(sink_.wait_for_lines(1), (Lines{"web-1 | one"}));
  write_log(log_of("web-2"), "two starts\n", std::vector<TimeMark>{{0, 3000}});
  append_to(log_of("web-3"), "three starts\n");
  add_instance("web-2", 10002);
  add_instance("web-3", 10003);
  record();
  auto lines = sink_.wait_for_lines(3);
  EXPECT_EQ(lines, (Lines{"web-1 | one", "web-2 | two starts", "web-3 | three starts"}));
  append_to(log_of("web-2"), "two goes on\n");
  EXPECT_EQ(sink_.wait_for_lines(4).back(), "web-2 | two goes on");
  EXPECT_EQ(sink_.instances(), (Lines{"web-1", "web-2", "web-3"}));
}

TEST_F(FollowTest, PortsFollowOnlyTheirInstances) {
  add_instance("web-1", 10001);
  add_instance("web-2", 10002);
  record();
  write_log(log_of("web-1"), "", std::vector<TimeMark>{});
  write_log(log_of("web-2"), "", std::vector<TimeMark>{});
  auto r = request();
  r.ports = "10002";
  start(r);
  append_to(log_of("web-1"), "not this one\n");
  append_to(log_of("web-2"), "this one\n");
  add_instance("web-3", 10003);
  write_log(log_of("web-3"), "nor this one\n", std::vector<TimeMark>{});
  record();
  append_to(log_of("web-2"), "and this\n");
  EXPECT_EQ(sink_.wait_for_lines(2), (Lines{"web-2 | this one", "web-2 | and this"}));
  stop();
  EXPECT_EQ(sink_.lines(), (Lines{"web-2 | this one", "web-2 | and this"}));
}

TEST_F(FollowTest, AFleetTakenDownEndsFollowingWithItsLastWords) {
  add_instance("web-1", 10001);
  record();
  write_log(log_of("web-1"), "up\n", std::vector<TimeMark>{{0, 1000}});
  start(request());
  EXPECT_EQ(sink_.wait_for_lines(1), (Lines{"web-1 | up"}));
  append_to(log_of("web-1"), "last words");
  fs::remove_all(paths().dir());
  ASSERT_EQ(following_.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(following_.get().end, LogsResult::End::fleet_gone);
  EXPECT_EQ(sink_.lines(), (Lines{"web-1 | up", "web-1 | last words"}));
  EXPECT_EQ(sink_.notices(), (Lines{"fleet web was taken down"}));
}

}  // namespace
}  // namespace haco::ops
