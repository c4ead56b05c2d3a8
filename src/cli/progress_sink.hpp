// The command line's ops::Sink: observe::ProgressReporter on stderr (a live
// line on a terminal, plain lines elsewhere) from begin() on, plain lines on
// stderr before.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/log_level.hpp"
#include "haco/observe.hpp"
#include "haco/ops.hpp"

namespace haco::cli {

class ProgressSink : public ops::Sink {
 public:
  // `operation` starts the live line ("up"); `steps` are counted on it.
  // `level`: what is printed (failures always are; progress from info on).
  // `notify_status`: status() goes to the service manager (up --foreground).
  ProgressSink(std::string operation, std::vector<std::string> steps, LogLevel level, bool notify_status = false);

  // At info, warn and error.
  void message(std::string_view text) override;
  void warning(std::string_view text) override;
  void error(std::string_view text) override;
  // A line whose level the caller knows; printed when the level shows it.
  void say(LogLevel level, std::string_view text);
  void begin(std::size_t total) override;
  void step(std::string_view step, std::string_view instance,
            std::optional<std::chrono::nanoseconds> took) override;
  void failed(std::string_view instance, std::string_view reason) override;
  void tick() override;
  void finish() override;
  void status(std::string_view text) override;

 private:
  std::string operation_;
  std::vector<std::string> steps_;
  LogLevel level_;
  bool notify_status_;
  std::unique_ptr<observe::ProgressReporter> progress_;
};

}  // namespace haco::cli
