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

}  // namespace

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
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  std::string text = options_.operation;
  for (const auto& c : counters_) text += fmt::format("  {} {}/{}", c.step, c.done, options_.total);
  text += fmt::format("  failed {}  {:.1f}s", failures_, elapsed);
  // One column short of the width: writing the last column makes some
  // terminals wrap, and the next \r would then redraw on a new line.
  if (options_.width > 1 && text.size() >= options_.width) text.resize(options_.width - 1);
  return text;
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
