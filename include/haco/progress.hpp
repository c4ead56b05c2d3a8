// Progress of a fleet operation (`up`, `down`). On a terminal: one live line,
// redrawn in place at most every `min_redraw` ("up  rootfs 40/100  started
// 31/100  ready 12/100  failed 1  2.4s"), with failures and messages printed
// above it, and cleared on finish. Elsewhere: one plain line per event
// ("ready web-10001 in 312 ms", "failed web-10002: exec /x: No such file or
// directory"). Safe to call from several threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
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

struct ProgressOptions {
  ProgressStyle style = ProgressStyle::plain_lines;
  std::string operation = "up";  // the line's first word
  // Steps counted on the live line, in display order: {"rootfs", "started",
  // "ready"}. A step not listed is counted and appended on first use.
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
