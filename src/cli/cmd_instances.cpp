// haco-fleet stop, start and restart: chosen instances of a running fleet,
// through its supervisor (ops::stop_instances, start_instances,
// restart_instances). They stay in the fleet; `down --ports` removes them.
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/interrupts.hpp"
#include "cli/option_forms.hpp"
#include "cli/option_ranges.hpp"
#include "cli/privilege.hpp"
#include "cli/progress_sink.hpp"
#include "haco/ops_instances.hpp"
#include "haco/readiness.hpp"

namespace haco::cli {
namespace {

struct Selection {
  std::string name;
  std::string ports;
};

void add_selection(CLI::App* cmd, Selection& selection, std::string_view verb) {
  cmd->add_option("--name", selection.name, "The fleet (needed when several are running)")->check(fleet_name_rule());
  cmd->add_option("--ports", selection.ports,
                  fmt::format("The instances to {} by port, e.g. 10001-10010,10020 (default: every instance)", verb));
}

ops::InstanceSelection selection_of(const Selection& s, const GlobalOptions& global) {
  return {global.state_root, global.data_root, s.name, s.ports};
}

// The options of the commands that start instances and wait for them.
struct WaitOptions {
  std::string ready = "tcp";
  double timeout_s = 60;
  bool no_wait = false;
};

void add_wait_options(CLI::App* cmd, WaitOptions& options) {
  cmd->add_option("--ready", options.ready, "Readiness: tcp (the port accepts) or http:PATH (2xx)")
      ->check(ready_form())
      ->capture_default_str();
  cmd->add_option("--timeout", options.timeout_s,
                  "Seconds each instance has to become ready, " + range_text(kUpTimeoutRange))
      ->check(seconds_in(kUpTimeoutRange))
      ->capture_default_str();
  cmd->add_flag("--no-wait", options.no_wait, "Return once every instance started, without readiness probes");
}

ops::StartInstancesRequest start_request_of(const Selection& s, const WaitOptions& w, const GlobalOptions& global) {
  ops::StartInstancesRequest request;
  request.which = selection_of(s, global);
  request.timeout = std::chrono::milliseconds(std::lround(w.timeout_s * 1000));
  request.no_wait = w.no_wait;
  request.interrupted = &interrupted_flag();
  request.on_locked = catch_interrupts;
  return request;
}

// "3/3 ready" and what failed; the exit status.
int report_start(const ops::StartInstancesResult& result, std::string_view verb) {
  if (result.started.empty()) {
    std::printf("fleet %s: nothing to %.*s\n", result.fleet.c_str(), static_cast<int>(verb.size()), verb.data());
    return kExitOk;
  }
  std::printf("fleet %s: %.*s %zu, %zu ready, %zu failed%s\n", result.fleet.c_str(), static_cast<int>(verb.size()),
              verb.data(), result.started.size(), result.ready, result.failures.size(),
              result.interrupted ? " (interrupted)" : "");
  for (const auto& [name, reason] : result.failures) std::printf("  %s: %s\n", name.c_str(), reason.c_str());
  if (!result.not_reached.empty())
    std::printf("  not restarted: %zu instance%s\n", result.not_reached.size(),
                result.not_reached.size() == 1 ? "" : "s");
  return result.failures.empty() && !result.interrupted && result.not_reached.empty() ? kExitOk : kExitFailed;
}

const char* kExitStatuses =
    "Exit status: 0 done (or nothing to do), 1 an instance failed or the fleet's supervisor is not running,\n"
    "2 bad input (unknown fleet or port: nothing was changed).";

}  // namespace

void add_stop_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("stop", "Stop chosen instances of a fleet; they stay in it, ready to start again");
  struct Options {
    Selection selection;
    double timeout_s = 10;
  };
  auto options = std::make_shared<Options>();
  add_selection(cmd, options->selection, "stop");
  cmd->add_option("--timeout", options->timeout_s,
                  "Seconds between the stop signal and SIGKILL, " + range_text(kDownTimeoutRange) + " (0: SIGKILL at once)")
      ->check(seconds_in(kDownTimeoutRange))
      ->capture_default_str();
  cmd->footer(std::string("Example: stop two instances of the fleet phpinfo; `start` brings them back:\n"
                          "  haco-fleet stop --name phpinfo --ports 10001-10002\n") +
              kExitStatuses);
  cmd->callback([options, &global, &exit_status] {
    if (!running_as_root("stop")) {
      exit_status = kExitBadInput;
      return;
    }
    ops::StopInstancesRequest request;
    request.which = selection_of(options->selection, global);
    request.timeout = std::chrono::milliseconds(std::lround(options->timeout_s * 1000));
    auto supervisor = ops::control_supervisor();
    ProgressSink sink("stop", {"stopped"}, global.level());
    auto result = ops::stop_instances(request, *supervisor, sink);
    std::printf("fleet %s: %zu stopped, %zu not running\n", result.fleet.c_str(), result.stopped.size(),
                result.not_running.size());
    exit_status = kExitOk;
  });
}

void add_start_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand(
      "start", "Start chosen instances of a fleet that are not running (stopped, exited, failed) and wait until ready");
  struct Options {
    Selection selection;
    WaitOptions wait;
  };
  auto options = std::make_shared<Options>();
  add_selection(cmd, options->selection, "start");
  add_wait_options(cmd, options->wait);
  cmd->footer(std::string("Example: start the stopped instances on two ports of the fleet phpinfo:\n"
                          "  haco-fleet start --name phpinfo --ports 10001-10002\n"
                          "Instances start from their records (spec, rootfs, log): the definition is not read again.\n") +
              kExitStatuses);
  cmd->callback([options, &global, &exit_status] {
    if (!running_as_root("start")) {
      exit_status = kExitBadInput;
      return;
    }
    auto supervisor = ops::control_supervisor();
    ProgressSink sink("start", {"started", "ready"}, global.level());
    auto result = ops::start_instances(start_request_of(options->selection, options->wait, global),
                                       {*supervisor, ops::observed_readiness(observe::parse_ready_spec(options->wait.ready)),
                                        sink});
    exit_status = report_start(result, "started");
  });
}

void add_restart_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("restart", "Stop and start chosen instances of a fleet, all at once or rolling");
  struct Options {
    Selection selection;
    WaitOptions wait;
    double stop_timeout_s = 10;
    bool rolling = false;
    unsigned batch = 1;
  };
  auto options = std::make_shared<Options>();
  add_selection(cmd, options->selection, "restart");
  add_wait_options(cmd, options->wait);
  cmd->add_option("--stop-timeout", options->stop_timeout_s,
                  "Seconds between the stop signal and SIGKILL, " + range_text(kDownTimeoutRange))
      ->check(seconds_in(kDownTimeoutRange))
      ->capture_default_str();
  cmd->add_flag("--rolling", options->rolling,
                "One batch at a time: the next batch is stopped only once this one is ready; the first batch with a "
                "failure ends the restart");
  cmd->add_option("--batch", options->batch, "Instances per batch with --rolling, " + range_text(kParallelRange))
      ->check(whole_number_in(kParallelRange))
      ->capture_default_str();
  cmd->footer(std::string("Example: restart the fleet phpinfo two instances at a time, each pair ready before the "
                          "next:\n"
                          "  haco-fleet restart --name phpinfo --rolling --batch 2\n") +
              kExitStatuses);
  cmd->callback([options, &global, &exit_status] {
    if (!running_as_root("restart")) {
      exit_status = kExitBadInput;
      return;
    }
    ops::RestartInstancesRequest request;
    request.start = start_request_of(options->selection, options->wait, global);
    request.stop_timeout = std::chrono::milliseconds(std::lround(options->stop_timeout_s * 1000));
    request.rolling = options->rolling;
    request.batch = options->batch;
    auto supervisor = ops::control_supervisor();
    ProgressSink sink("restart", {"stopped", "started", "ready"}, global.level());
    auto result = ops::restart_instances(
        request, {*supervisor, ops::observed_readiness(observe::parse_ready_spec(options->wait.ready)), sink});
    exit_status = report_start(result, "restarted");
  });
}

}  // namespace haco::cli
