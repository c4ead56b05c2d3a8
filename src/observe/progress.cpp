#include "haco/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>

namespace haco::observe {

namespace {

// Moves to the start of the line and erases it.
constexpr std::string_view kClearLine = "\r\x1b[K";

std::string plain_step_line(std::string_view step, std::string_view instance) {
  return fmt::format("{} {}", step, instance);
}

// "17s", "3m05s", "1h02m".
std::string duration_text(double seconds) {
  auto whole = static_cast<long long>(seconds + 0.5);
  if (whole < 60) return fmt::format("{}s", whole);
  if (whole < 3600) return fmt::format("{}m{:02}s", whole / 60, whole % 60);
  return fmt::format("{}h{:02}m", whole / 3600, whole % 3600 / 60);
}

constexpr unsigned kDefaultBarColumns = 20;
constexpr unsigned kMinBarColumns = 10;
constexpr unsigned kMaxBarColumns = 30;
constexpr double kMinRateSeconds = 1.0;

}  // namespace

std::string format_live_line(const LiveLine& line) {
  std::string text = line.operation;
  if (line.done) {
    const std::size_t done = std::min(*line.done, line.total);
    const unsigned columns =
        line.width == 0 ? kDefaultBarColumns : std::clamp(line.width / 4, kMinBarColumns, kMaxBarColumns);
    const auto filled = line.total == 0 ? 0 : static_cast<unsigned>(done * columns / line.total);
    text += fmt::format(" [{}{}] {}/{}", std::string(filled, '#'), std::string(columns - filled, '.'), *line.done,
                        line.total);
    // A rate over less than a second is noise (the first instances are
    // often done together): none until then.
    if (*line.done == 0 || line.elapsed_seconds < kMinRateSeconds) {
      text += "  --/s  ETA --";
    } else {
      const double rate = static_cast<double>(*line.done) / line.elapsed_seconds;
      const double left = static_cast<double>(line.total - done) / rate;
      text += fmt::format("  {:.1f}/s  ETA {}", rate, duration_text(left));
    }
    text += fmt::format("  {:.1f}s  failed {}", line.elapsed_seconds, line.failures);
    for (const auto& [step, count] : line.steps) text += fmt::format("  {} {}/{}", step, count, line.total);
  } else {
    for (const auto& [step, count] : line.steps) text += fmt::format("  {} {}/{}", step, count, line.total);
    text += fmt::format("  failed {}  {:.1f}s", line.failures, line.elapsed_seconds);
  }
  // One column short of the width: writing the last column makes some
  // terminals wrap, and the next \r would then redraw on a new line.
  if (line.width > 1 && text.size() >= line.width) text.resize(line.width - 1);
  return text;
}

ProgressStyle progress_style_for(int fd) { return ::isatty(fd) == 1 ? ProgressStyle::live_line : ProgressStyle::plain_lines; }

unsigned terminal_width(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

ProgressReporter::ProgressReporter(std::ostream& out, ProgressOptions options)
    : out_(out), options_(std::move(options)), started_(std::chrono::steady_clock::now()) {
  for (const auto& s : options_.steps) counters_.push_back({s, 0});
}

ProgressReporter::~ProgressReporter() { finish(); }

ProgressReporter::Counter& ProgressReporter::counter(std::string_view step) {
  auto it = std::find_if(counters_.begin(), counters_.end(), [&](const Counter& c) { return c.step == step; });
  if (it != counters_.end()) return *it;
  counters_.push_back({std::string(step), 0});
  return counters_.back();
}

void ProgressReporter::step(std::string_view step, std::string_view instance) {
  std::lock_guard lock(mutex_);
  ++counter(step).done;
  if (options_.style == ProgressStyle::plain_lines)
    print_line(plain_step_line(step, instance));
  else
    redraw(false);
}

void ProgressReporter::step(std::string_view step, std::string_view instance, std::chrono::nanoseconds took) {
  std::lock_guard lock(mutex_);
  ++counter(step).done;
  if (options_.style == ProgressStyle::plain_lines)
    print_line(fmt::format("{} in {} ms", plain_step_line(step, instance),
                           std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  else
    redraw(false);
}

void ProgressReporter::failed(std::string_view instance, std::string_view reason) {
  std::lock_guard lock(mutex_);
  ++failures_;
  print_line(fmt::format("failed {}: {}", instance, reason));
}

void ProgressReporter::message(std::string_view text) {
  std::lock_guard lock(mutex_);
  print_line(text);
}

void ProgressReporter::tick() {
  std::lock_guard lock(mutex_);
  redraw(false);
}

void ProgressReporter::finish() {
  std::lock_guard lock(mutex_);
  clear_live();
  finished_ = true;
}

std::size_t ProgressReporter::count(std::string_view step) const {
  std::lock_guard lock(mutex_);
  for (const auto& c : counters_) {
    if (c.step == step) return c.done;
  }
  return 0;
}

std::size_t ProgressReporter::failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

std::string ProgressReporter::live_text() const {
  LiveLine line;
  line.operation = options_.operation;
  for (const auto& c : counters_) line.steps.emplace_back(c.step, c.done);
  if (!options_.steps.empty()) {
    for (const auto& c : counters_) {
      if (c.step == options_.steps.back()) line.done = c.done + failures_;
    }
  }
  line.total = options_.total;
  line.failures = failures_;
  line.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  line.width = options_.width;
  return format_live_line(line);
}

void ProgressReporter::redraw(bool force) {
  if (options_.style != ProgressStyle::live_line || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && live_shown_ && now - last_draw_ < options_.min_redraw) return;
  out_ << '\r' << live_text() << "\x1b[K" << std::flush;
  live_shown_ = true;
  last_draw_ = now;
}

void ProgressReporter::clear_live() {
  if (!live_shown_) return;
  out_ << kClearLine << std::flush;
  live_shown_ = false;
}

void ProgressReporter::print_line(std::string_view text) {
  clear_live();
  out_ << text << '\n';
  out_.flush();
  redraw(true);
}

}  // namespace haco::observe
