// Progress of a fleet operation (`up`, `down`). On a terminal: one live line,
// redrawn in place at most every `min_redraw` ("up [####......] 13/100
// 5.2/s  ETA 17s  2.5s  failed 1  rootfs 40/100  started 31/100  ready
// 12/100": a bar of the instances done, their rate and the time left), with
// failures and messages printed above it, and cleared on finish. Elsewhere: one plain line per event
// ("ready web-10001 in 312 ms", "failed web-10002: exec /x: No such file or
// directory"). Safe to call from several threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace haco::observe {

enum class ProgressStyle {
  live_line,    // a terminal
  plain_lines,  // a pipe, a file, a log
};

// live_line when `fd` is a terminal (isatty), plain_lines otherwise.
ProgressStyle progress_style_for(int fd);
// The terminal's width in columns (TIOCGWINSZ), or 0 when `fd` is not one.
unsigned terminal_width(int fd);

// What the live line shows, for format_live_line().
struct LiveLine {
  std::string operation;                                // "up"
  std::vector<std::pair<std::string, std::size_t>> steps;  // each step's count, in display order
  // Instances done (their last step, or failed), for the bar, the rate and
  // the ETA; without it the line has counts alone.
  std::optional<std::size_t> done;
  std::size_t total = 0;
  std::size_t failures = 0;
  double elapsed_seconds = 0;
  unsigned width = 0;  // the terminal's columns (0: unknown)
};

// The live line without escapes:
//   "up [######..............] 30/100  12.0/s  ETA 6s  2.5s  failed 0  rootfs 40/100 ..."
// The bar is 20 columns, or a quarter of `width` within 10..30; "--/s" and
// "ETA --" while nothing is done or less than a second passed (no rate yet). With a width the line is cut
// one column short of it (a terminal wraps after writing its last column).
std::string format_live_line(const LiveLine& line);

struct ProgressOptions {
  ProgressStyle style = ProgressStyle::plain_lines;
  std::string operation = "up";  // the line's first word
  // Steps counted on the live line, in display order: {"rootfs", "started",
  // "ready"}. A step not listed is counted and appended on first use. The
  // last one listed is the one that completes an instance: its count plus
  // the failures fills the bar.
  std::vector<std::string> steps;
  std::size_t total = 0;  // M in N/M
  std::chrono::milliseconds min_redraw{100};
  unsigned width = 0;  // truncate the live line to this many columns (0: no limit)
};

class ProgressReporter {
 public:
  ProgressReporter(std::ostream& out, ProgressOptions options);
  // Clears the live line if finish() was not called.
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // `instance` completed `step`; `took` (optional) is printed on the plain
  // line: "ready web-10001 in 312 ms".
  void step(std::string_view step, std::string_view instance);
  void step(std::string_view step, std::string_view instance, std::chrono::nanoseconds took);
  // `instance` failed; counted, and the reason printed (above the live line).
  void failed(std::string_view instance, std::string_view reason);
  // A line of its own (above the live line on a terminal).
  void message(std::string_view text);
  // Redraws the live line if due (elapsed time moves); call from a timer.
  void tick();
  // Clears the live line (nothing more is drawn); plain lines are untouched.
  void finish();

  std::size_t count(std::string_view step) const;
  std::size_t failures() const;

 private:
  struct Counter {
    std::string step;
    std::size_t done = 0;
  };
  Counter& counter(std::string_view step);
  std::string live_text() const;
  void redraw(bool force);
  void clear_live();
  void print_line(std::string_view text);

  std::ostream& out_;
  ProgressOptions options_;
  const std::chrono::steady_clock::time_point started_;
  mutable std::mutex mutex_;
  std::vector<Counter> counters_;
  std::size_t failures_ = 0;
  bool live_shown_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace haco::observe
