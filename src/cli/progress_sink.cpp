#include "cli/progress_sink.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "haco/systemd_unit.hpp"

namespace haco::cli {

namespace {

void print_line(observe::ProgressReporter* progress, std::string_view text) {
  if (progress) progress->message(text);
  else std::fprintf(stderr, "%.*s\n", static_cast<int>(text.size()), text.data());
}

}  // namespace

ProgressSink::ProgressSink(std::string operation, std::vector<std::string> steps, LogLevel level,
                           bool notify_status)
    : operation_(std::move(operation)), steps_(std::move(steps)), level_(level), notify_status_(notify_status) {}

void ProgressSink::message(std::string_view text) { say(LogLevel::info, text); }

void ProgressSink::warning(std::string_view text) { say(LogLevel::warn, "haco-fleet: warning: " + std::string(text)); }

void ProgressSink::error(std::string_view text) { say(LogLevel::error, "haco-fleet: " + std::string(text)); }

void ProgressSink::say(LogLevel level, std::string_view text) {
  if (shows(level_, level)) print_line(progress_.get(), text);
}

void ProgressSink::begin(std::size_t total) {
  // Below info no progress is drawn; failures are still printed, as plain lines.
  if (!shows(level_, LogLevel::info)) return;
  auto style = shows(level_, LogLevel::debug) ? observe::ProgressStyle::plain_lines
                                              : observe::progress_style_for(STDERR_FILENO);
  progress_ = std::make_unique<observe::ProgressReporter>(
      std::cerr, observe::ProgressOptions{style, operation_, steps_, total, std::chrono::milliseconds(100),
                                          observe::terminal_width(STDERR_FILENO)});
}

void ProgressSink::step(std::string_view step, std::string_view instance,
                        std::optional<std::chrono::nanoseconds> took) {
  if (!progress_) return;
  if (took) progress_->step(step, instance, *took);
  else progress_->step(step, instance);
}

void ProgressSink::failed(std::string_view instance, std::string_view reason) {
  if (progress_) progress_->failed(instance, reason);
  else print_line(nullptr, std::string("failed ") + std::string(instance) + ": " + std::string(reason));
}

void ProgressSink::tick() {
  if (progress_) progress_->tick();
}

void ProgressSink::finish() {
  if (progress_) progress_->finish();
}

void ProgressSink::status(std::string_view text) {
  if (notify_status_) systemd::notify("STATUS=" + std::string(text));
}

}  // namespace haco::cli
