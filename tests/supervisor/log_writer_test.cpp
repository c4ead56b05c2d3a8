// The fleet's log writer with real containers: a flood past the cap keeps
// the newest lines whole and contiguous, nothing is lost below it, and the
// instances' output still reaches their logs when the supervisor or the
// writer itself is killed with SIGKILL.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "fleet_fixture.hpp"

namespace haco::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// An init that writes `count` numbered lines ("line-0" ...) as fast as a
// shell can, one write each, then `after`.
std::string numbered_lines_then(unsigned count, const std::string& after) {
  return "i=0; while [ $i -lt " + std::to_string(count) + " ]; do echo line-$i; i=$((i+1)); done; " + after;
}

std::string file_or_empty(const std::string& path) { return fs::exists(path) ? read_text(path) : std::string(); }

// The numbers of the lines of `text`, which must each be "line-N"; a line
// that is not (cut, or garbled) fails the test. A log read while an instance
// still writes may end inside the line being written (`still_written`): that
// last piece is left out rather than failing the test.
std::vector<long> line_numbers(std::string text, const std::string& which, bool still_written = false) {
  if (still_written) {
    const auto last_newline = text.rfind('\n');
    text.resize(last_newline == std::string::npos ? 0 : last_newline + 1);
  }
  std::vector<long> numbers;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "END") continue;
    if (line.rfind("line-", 0) != 0 || line.size() == 5 ||
        line.find_first_not_of("0123456789", 5) != std::string::npos) {
      ADD_FAILURE() << which << ": not a whole numbered line: '" << line << "'";
      continue;
    }
    numbers.push_back(std::stol(line.substr(5)));
  }
  if (!text.empty() && text.back() != '\n') ADD_FAILURE() << which << " ends inside a line";
  return numbers;
}

// Each number follows the one before it: nothing lost, nothing twice.
void expect_contiguous(const std::vector<long>& numbers, long first, long last) {
  ASSERT_FALSE(numbers.empty());
  EXPECT_EQ(numbers.front(), first);
  EXPECT_EQ(numbers.back(), last);
  for (std::size_t i = 1; i < numbers.size(); ++i)
    if (numbers[i] != numbers[i - 1] + 1) {
      ADD_FAILURE() << "line-" << numbers[i] << " follows line-" << numbers[i - 1];
      return;
    }
}

class LogWriterTest : public FleetTest {
 protected:
  // One instance running `script`, started without waiting for a port.
  void up_writing(const std::string& script, const std::string& extra = "") {
    ::setenv("HACO_TEST_SH", script.c_str(), 1);
    auto result = up(1, "--no-wait " + extra);
    ::unsetenv("HACO_TEST_SH");
    ASSERT_EQ(result.status, 0) << result.output;
    auto fleet = fleet_state();
    ASSERT_TRUE(fleet.has_value());
    ASSERT_EQ(fleet->instances.size(), 1u);
    log_ = fleet->instances[0].log_path;
  }
  bool log_ends_with(const std::string& line) const {
    std::string text = file_or_empty(log_);
    return text.size() >= line.size() && text.compare(text.size() - line.size(), line.size(), line) == 0;
  }
  std::string instance_state() const {
    return ps_json()["fleets"][0]["instances"][0]["state"].get<std::string>();
  }
  // down; the writer exits by itself once the instances are gone, and
  // nothing of the fleet is left.
  void down_leaves_nothing() {
    auto fleet = fleet_state();
    ASSERT_TRUE(fleet.has_value());
    auto down = haco("down --name " + fleet_ + " --timeout 1 --purge");
    ASSERT_EQ(down.status, 0) << down.output;
    EXPECT_EQ(down.output.find("killing the log writer"), std::string::npos) << down.output;
    expect_nothing_left(*fleet);
  }

  std::string log_;
};

TEST_F(LogWriterTest, AFloodPastTheCapKeepsTheNewestLinesWholeAndContiguous) {
  constexpr unsigned kLines = 200000;  // about 2.3 MB
  constexpr std::uint64_t kCap = 64 * 1024;
  up_writing(numbered_lines_then(kLines, "exit 0"), "--log-max-bytes " + std::to_string(kCap));
  const std::string last = "line-" + std::to_string(kLines - 1) + "\n";
  ASSERT_TRUE(wait_for([&] { return log_ends_with(last); }, 120s)) << "log ends with: "
                                                                   << file_or_empty(log_).substr(0, 200);
  ASSERT_TRUE(wait_for([&] { return instance_state() == "exited"; }, 10s)) << instance_state();
  EXPECT_EQ(ps_json()["fleets"][0]["instances"][0]["last_exit"], "exit 0");

  const std::string older = file_or_empty(log_ + ".1"), current = file_or_empty(log_);
  EXPECT_LE(older.size(), kCap);
  EXPECT_LE(current.size(), kCap);
  // Rotated full, up to the last whole line that fitted.
  EXPECT_GT(older.size(), kCap - 16);
  auto numbers = line_numbers(older, "<log>.1");
  auto newer = line_numbers(current, "<log>");
  numbers.insert(numbers.end(), newer.begin(), newer.end());
  ASSERT_FALSE(numbers.empty());
  expect_contiguous(numbers, numbers.front(), kLines - 1);
  down_leaves_nothing();
}

TEST_F(LogWriterTest, NothingIsLostBelowTheCap) {
  constexpr unsigned kLines = 100000;  // about 1.1 MB, under the default 16 MiB
  up_writing(numbered_lines_then(kLines, "exit 0"));
  const std::string last = "line-" + std::to_string(kLines - 1) + "\n";
  ASSERT_TRUE(wait_for([&] { return log_ends_with(last); }, 120s));
  EXPECT_FALSE(fs::exists(log_ + ".1"));
  expect_contiguous(line_numbers(read_text(log_), "<log>"), 0, kLines - 1);
  down_leaves_nothing();
}

TEST_F(LogWriterTest, InstancesKeepLoggingWhenTheSupervisorIsKilled) {
  constexpr unsigned kLines = 300000;  // about 3.5 MB: many pipes full after the kill
  up_writing(numbered_lines_then(kLines, "echo END; exec sleep 1000"));
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_TRUE(state::is_alive(fleet->log_writer)) << "no log writer recorded";
  EXPECT_EQ(read_text("/proc/" + std::to_string(fleet->log_writer.pid) + "/cmdline").c_str(),
            "haco-fleet: logs " + fleet_);
  ASSERT_TRUE(wait_for([&] { return !file_or_empty(log_).empty(); }, 30s));
  ASSERT_EQ(::kill(fleet->supervisor.pid, SIGKILL), 0);
  ASSERT_TRUE(wait_for([&] { return !state::is_alive(fleet->supervisor); }, 10s));
  const auto lines_at_kill = line_numbers(read_text(log_), "<log>", true).size();
  EXPECT_LT(lines_at_kill, kLines / 2) << "the instance wrote most before the kill; the test proves little";

  // The writer goes on, and so does the instance, to its last line.
  ASSERT_TRUE(wait_for([&] { return log_ends_with("END\n"); }, 120s))
      << "lines now: " << line_numbers(read_text(log_), "<log>", true).size();
  EXPECT_TRUE(state::is_alive(fleet->log_writer));
  const auto& init = fleet->instances[0].process;
  EXPECT_TRUE(state::is_alive(init)) << "the instance was killed";
  expect_contiguous(line_numbers(read_text(log_), "<log>"), 0, kLines - 1);
  down_leaves_nothing();
}

TEST_F(LogWriterTest, AKilledLogWriterIsReplacedAndNoLineIsLost) {
  constexpr unsigned kLines = 300000;
  up_writing(numbered_lines_then(kLines, "echo END; exec sleep 1000"));
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  const state::ProcessIdentity first = fleet->log_writer;
  ASSERT_TRUE(state::is_alive(first));
  ASSERT_TRUE(wait_for([&] { return !file_or_empty(log_).empty(); }, 30s));
  ASSERT_EQ(::kill(first.pid, SIGKILL), 0);
  state::ProcessIdentity second;
  ASSERT_TRUE(wait_for(
      [&] {
        auto now = fleet_state();
        if (now && now->log_writer.pid > 0 && !(now->log_writer == first)) second = now->log_writer;
        return state::is_alive(second);
      },
      20s))
      << "no new log writer";
  EXPECT_EQ(read_text("/proc/" + std::to_string(second.pid) + "/cmdline").c_str(), "haco-fleet: logs " + fleet_);
  EXPECT_LT(line_numbers(read_text(log_), "<log>", true).size(), kLines / 2)
      << "the instance wrote most before the kill; the test proves little";

  ASSERT_TRUE(wait_for([&] { return log_ends_with("END\n"); }, 120s))
      << "lines now: " << line_numbers(read_text(log_), "<log>", true).size();
  EXPECT_TRUE(state::is_alive(fleet->instances[0].process)) << "the instance was killed";
  expect_contiguous(line_numbers(read_text(log_), "<log>"), 0, kLines - 1);
  EXPECT_NE(read_text(root_ + "/" + fleet_ + "/supervisor.log").find("log writer (pid " + std::to_string(first.pid) +
                                                                     ") ended: signal 9"),
            std::string::npos);
  down_leaves_nothing();
}

// Each launch of a restarted instance writes through a pipe of its own, into
// the same log.
TEST_F(LogWriterTest, EveryLaunchOfARestartedInstanceAppendsToItsLog) {
  up_writing("echo launched; exit 3", "--restart on-failure:2");
  ASSERT_TRUE(wait_for([&] { return instance_state() == "failed"; }, 30s)) << instance_state();
  EXPECT_EQ(ps_json()["fleets"][0]["instances"][0]["restarts"], 2);
  ASSERT_TRUE(wait_for([&] { return file_or_empty(log_) == "launched\nlaunched\nlaunched\n"; }, 10s))
      << file_or_empty(log_);
  down_leaves_nothing();
}

}  // namespace
}  // namespace haco::testing
