#include "haco/progress.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "haco/unique_fd.hpp"

namespace haco::observe {
namespace {

using namespace std::chrono_literals;

std::size_t occurrences(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

ProgressOptions options(ProgressStyle style) {
  ProgressOptions o;
  o.style = style;
  o.steps = {"rootfs", "started", "ready"};
  o.total = 3;
  return o;
}

TEST(PlainProgress, OneLinePerEvent) {
  std::ostringstream out;
  {
    ProgressReporter progress(out, options(ProgressStyle::plain_lines));
    progress.step("rootfs", "web-10001");
    progress.step("ready", "web-10001", 312ms);
    progress.failed("web-10002", "exec /x: No such file or directory");
    progress.message("2 of 3 instances ready");
    progress.tick();
    progress.finish();
    EXPECT_EQ(progress.count("rootfs"), 1u);
    EXPECT_EQ(progress.count("ready"), 1u);
    EXPECT_EQ(progress.count("started"), 0u);
    EXPECT_EQ(progress.failures(), 1u);
  }
  EXPECT_EQ(out.str(),
            "rootfs web-10001\n"
            "ready web-10001 in 312 ms\n"
            "failed web-10002: exec /x: No such file or directory\n"
            "2 of 3 instances ready\n");
}

TEST(LiveProgress, OneLineRedrawnInPlaceAndClearedOnFinish) {
  std::ostringstream out;
  auto o = options(ProgressStyle::live_line);
  o.min_redraw = 0ms;
  ProgressReporter progress(out, o);
  progress.step("rootfs", "web-10001");
  progress.step("rootfs", "web-10002");
  progress.step("started", "web-10001", 5ms);
  const auto drawn = out.str();
  EXPECT_EQ(drawn.find('\n'), std::string::npos) << drawn;
  EXPECT_EQ(occurrences(drawn, "\r"), 3u);
  const auto last = drawn.substr(drawn.rfind('\r'));
  // Nothing done yet: an empty bar, no rate, no ETA.
  EXPECT_EQ(last.substr(0, 48), "\rup [....................] 0/3  --/s  ETA --  0.");
  EXPECT_NE(last.find("s  failed 0  rootfs 2/3  started 1/3  ready 0/3\x1b[K"), std::string::npos) << last;
  EXPECT_EQ(last.substr(last.size() - 3), "\x1b[K");
  progress.finish();
  EXPECT_EQ(out.str().substr(out.str().size() - 4), "\r\x1b[K");
  const auto before = out.str().size();
  progress.step("ready", "web-10001");
  progress.finish();
  EXPECT_EQ(out.str().size(), before) << "drew after finish";
}

TEST(LiveProgress, FailuresAndMessagesArePrintedAboveTheLine) {
  std::ostringstream out;
  auto o = options(ProgressStyle::live_line);
  o.min_redraw = 1h;
  ProgressReporter progress(out, o);
  progress.step("rootfs", "web-10001");
  progress.failed("web-10002", "exec /x: No such file or directory");
  const auto text = out.str();
  const auto failure = text.find("\r\x1b[Kfailed web-10002: exec /x: No such file or directory\n");
  ASSERT_NE(failure, std::string::npos) << text;
  // Redrawn at once below the printed line, failure counted.
  const auto after = text.substr(failure);
  EXPECT_NE(after.find("\rup [######..............] 1/3  "), std::string::npos) << after;
  EXPECT_NE(after.find("  failed 1  rootfs 1/3  started 0/3  ready 0/3"), std::string::npos) << after;
}

TEST(LiveProgress, RedrawsAtMostOncePerInterval) {
  std::ostringstream out;
  auto o = options(ProgressStyle::live_line);
  o.min_redraw = 100ms;
  ProgressReporter progress(out, o);
  for (int i = 0; i < 50; ++i) progress.step("rootfs", "web");
  EXPECT_EQ(occurrences(out.str(), "\r"), 1u);
  std::this_thread::sleep_for(120ms);
  progress.tick();
  EXPECT_EQ(occurrences(out.str(), "\r"), 2u);
  EXPECT_NE(out.str().find("rootfs 50/3"), std::string::npos);
}

TEST(LiveProgress, UnlistedStepsAreAppendedAndTheLineFitsTheWidth) {
  std::ostringstream out;
  ProgressOptions o;
  o.style = ProgressStyle::live_line;
  o.operation = "down";
  o.total = 100;
  o.min_redraw = 0ms;
  o.width = 31;
  ProgressReporter progress(out, o);
  progress.step("stopped", "web-10001");
  progress.step("removed", "web-10001");
  const auto text = out.str();
  const auto last = text.substr(text.rfind('\r') + 1);
  EXPECT_EQ(last, std::string("down  stopped 1/100  removed 1") + "\x1b[K");
  EXPECT_EQ(last.size() - 3, 30u);
}

LiveLine up_line(std::size_t done, std::size_t total, double elapsed, unsigned width = 0) {
  LiveLine line;
  line.operation = "up";
  line.steps = {{"rootfs", total}, {"started", done}, {"ready", done}};
  line.done = done;
  line.total = total;
  line.elapsed_seconds = elapsed;
  line.width = width;
  return line;
}

TEST(LiveLineFormat, AtTheStartTheBarIsEmptyAndTheEtaUnknown) {
  EXPECT_EQ(format_live_line(up_line(0, 100, 0.0)),
            "up [....................] 0/100  --/s  ETA --  0.0s  failed 0  rootfs 100/100  started 0/100  ready 0/100");
  // Time passing without an instance done gives no rate either, nor
  // instances done within the first second.
  EXPECT_EQ(format_live_line(up_line(0, 100, 3.0)).substr(0, 45),
            "up [....................] 0/100  --/s  ETA --");
  EXPECT_EQ(format_live_line(up_line(5, 100, 0.5)).substr(0, 45),
            "up [#...................] 5/100  --/s  ETA --");
}

TEST(LiveLineFormat, RateAndEtaFromTheInstancesDone) {
  auto half = up_line(50, 100, 10.0);
  half.failures = 2;
  EXPECT_EQ(format_live_line(half),
            "up [##########..........] 50/100  5.0/s  ETA 10s  10.0s  failed 2  rootfs 100/100  started 50/100  "
            "ready 50/100");
  // 10 of 1000 in 10 s: 990 s left.
  EXPECT_EQ(format_live_line(up_line(10, 1000, 10.0)).substr(0, 52),
            "up [....................] 10/1000  1.0/s  ETA 16m30s");
  EXPECT_NE(format_live_line(up_line(1, 10000, 1.0)).find("ETA 2h46m"), std::string::npos);
}

TEST(LiveLineFormat, AtTheEndTheBarIsFull) {
  EXPECT_EQ(format_live_line(up_line(100, 100, 20.0)).substr(0, 50),
            "up [####################] 100/100  5.0/s  ETA 0s  ");
  // More done than the total (a count beyond it) keeps the bar full, not wider.
  EXPECT_EQ(format_live_line(up_line(7, 5, 1.0)).substr(0, 39), "up [####################] 7/5  7.0/s  E");
}

TEST(LiveLineFormat, TheBarFollowsTheWidthAndTheLineFitsIt) {
  // A quarter of the width, within 10..30 columns; cut one column short.
  const auto narrow = format_live_line(up_line(5, 10, 1.0, 40));
  EXPECT_EQ(narrow, "up [#####.....] 5/10  5.0/s  ETA 1s  1.");
  EXPECT_EQ(narrow.size(), 39u);
  const auto eighty = format_live_line(up_line(5, 10, 1.0, 80));
  EXPECT_EQ(eighty.substr(0, 26), "up [##########..........] ");
  EXPECT_EQ(eighty.size(), 79u);
  const auto wide = format_live_line(up_line(5, 10, 1.0, 400));
  EXPECT_EQ(wide.substr(0, 36), "up [###############...............] ");
  EXPECT_LT(wide.size(), 399u);
}

TEST(LiveLineFormat, WithoutADoneCountTheLineHasCountsAlone) {
  LiveLine line;
  line.operation = "reload";
  line.steps = {{"reloaded", 2}};
  line.total = 4;
  line.elapsed_seconds = 1.5;
  EXPECT_EQ(format_live_line(line), "reload  reloaded 2/4  failed 0  1.5s");
}

TEST(LiveProgress, CountsFromManyThreads) {
  std::ostringstream out;
  auto o = options(ProgressStyle::live_line);
  ProgressReporter progress(out, o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) progress.step("ready", "web");
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(progress.count("ready"), 1000u);
}

TEST(ProgressStyleFor, PipeIsPlainAndTerminalIsLive) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  EXPECT_EQ(progress_style_for(write_end.get()), ProgressStyle::plain_lines);
  EXPECT_EQ(terminal_width(write_end.get()), 0u);

  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(master);
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  UniqueFd terminal(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(terminal);
  EXPECT_EQ(progress_style_for(terminal.get()), ProgressStyle::live_line);
  winsize size{};
  size.ws_col = 123;
  size.ws_row = 40;
  ASSERT_EQ(::ioctl(terminal.get(), TIOCSWINSZ, &size), 0);
  EXPECT_EQ(terminal_width(terminal.get()), 123u);
}

}  // namespace
}  // namespace haco::observe
