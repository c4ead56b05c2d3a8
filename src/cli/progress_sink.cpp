#include "cli/progress_sink.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "haco/systemd_unit.hpp"

namespace haco::cli {

ProgressSink::ProgressSink(std::string operation, std::vector<std::string> steps, bool notify_status)
    : operation_(std::move(operation)), steps_(std::move(steps)), notify_status_(notify_status) {}

void ProgressSink::message(std::string_view text) {
  if (progress_) progress_->message(text);
  else std::fprintf(stderr, "%.*s\n", static_cast<int>(text.size()), text.data());
}

void ProgressSink::begin(std::size_t total) {
  progress_ = std::make_unique<observe::ProgressReporter>(
      std::cerr, observe::ProgressOptions{observe::progress_style_for(STDERR_FILENO), operation_, steps_, total,
                                          std::chrono::milliseconds(100), observe::terminal_width(STDERR_FILENO)});
}

void ProgressSink::step(std::string_view step, std::string_view instance,
                        std::optional<std::chrono::nanoseconds> took) {
  if (!progress_) return;
  if (took) progress_->step(step, instance, *took);
  else progress_->step(step, instance);
}

void ProgressSink::failed(std::string_view instance, std::string_view reason) {
  if (progress_) progress_->failed(instance, reason);
  else message(std::string("failed ") + std::string(instance) + ": " + std::string(reason));
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
