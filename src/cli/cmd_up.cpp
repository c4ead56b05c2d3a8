// haco-fleet up: the options, ops::up over the real supervisor, rootfs engine
// and readiness probes, the report and the exit status. Also the hidden
// `supervise` subcommand that the supervisor process runs.

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/slurm_slice_task.hpp"
#include "cli/up_options.hpp"
#include "cli/interrupts.hpp"
#include "cli/expand_options.hpp"
#include "cli/json_schemas.hpp"
#include "cli/option_forms.hpp"
#include "cli/option_ranges.hpp"
#include "cli/privilege.hpp"
#include "cli/progress_sink.hpp"
#include "cli/rootfs_messages.hpp"
#include "haco/error.hpp"
#include "haco/observe.hpp"
#include "haco/open_files.hpp"
#include "haco/ops.hpp"
#include "haco/supervisor.hpp"

namespace haco::cli {
namespace {

using observe::Clock;

constexpr int kExitInterrupted = 130;


// The option parser holds --rootfs to these two.
rootfs::Strategy parse_strategy(const std::string& text) {
  return text == "extract" ? rootfs::Strategy::extract : rootfs::Strategy::overlay;
}

// Each instance's port by its index, for the samples file.
std::map<observe::InstanceId, std::uint16_t> ports_by_index(const std::vector<InstanceSpec>& instances) {
  std::map<observe::InstanceId, std::uint16_t> ports;
  for (const auto& i : instances) ports[i.index] = i.port;
  return ports;
}

void report(const ops::UpResult& result, const UpOptions& options,
            const std::map<observe::InstanceId, std::uint16_t>& ports) {
  const std::string& fleet = result.paths->fleet;
  auto summary = result.latency->summary();
  if (!options.trace.empty()) observe::write_chrome_trace(*result.latency, "haco-fleet " + fleet, options.trace);
  if (!options.samples.empty()) observe::write_samples_csv(*result.latency, ports, options.samples);
  if (options.json) {
    nlohmann::json failed = nlohmann::json::array();
    for (const auto& [name, reason] : result.failures) failed.push_back({{"instance", name}, {"error", reason}});
    nlohmann::json out = {{"schema", kUpSchemaVersion},
                          {"fleet", fleet},
                          {"started", result.started},
                          {"failed", failed},
                          {"atomic_rollback", result.atomic_rollback},
                          {"latency", observe::summary_to_json(summary)}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("fleet %s: %zu of %zu instances %s\n", fleet.c_str(), result.started - result.failures.size(),
              result.started, options.no_wait ? "started" : "ready");
  for (const auto& [name, reason] : result.failures) std::printf("  failed %s: %s\n", name.c_str(), reason.c_str());
  std::printf("%s", observe::format_summary(summary).c_str());
  if (!options.trace.empty()) std::printf("trace written to %s\n", options.trace.c_str());
  if (!options.samples.empty()) std::printf("samples written to %s\n", options.samples.c_str());
}

int finish_up(const ops::UpResult& result, const ops::UpRequest& request, const UpOptions& options,
              ops::SupervisorClient& supervisor, ops::Sink& sink);

// `up --slurm-slice` once `up` returned: a slice with a failed instance
// fails its task (taken down whole, the reason in the job's output); a ready
// one stays until Slurm ends the task, then goes with --purge.
int finish_slice(SliceTask& slice, const ops::UpResult& result, const ops::UpRequest& request,
                 const UpOptions& options, ops::SupervisorClient& supervisor, ops::Sink& sink) {
  if (result.outcome == ops::UpResult::Outcome::finished) report(result, options, ports_by_index(request.instances));
  int status = kExitOk;
  if (result.outcome == ops::UpResult::Outcome::interrupted) {
    slice.report("stopped", "interrupted while starting");
    status = kExitInterrupted;
  } else if (!result.failures.empty() || result.atomic_rollback) {
    slice.report("failed", first_failure_text(result.failures));
    status = kExitFailed;
  } else {
    slice.report("ready", fmt::format("{}/{}", result.started, result.started));
    bool ended_well = result.outcome == ops::UpResult::Outcome::already_running ||
                      ops::stay_in_foreground(result, interrupted_flag(), supervisor, sink, true);
    slice.report("stopping");
    status = ended_well ? kExitOk : kExitFailed;
  }
  if (!slice.end(supervisor, sink)) {
    slice.report("failed", "its slice could not be taken down whole (the Epilog tries again)");
    return kExitFailed;
  }
  slice.report("stopped");
  return status;
}

int run_up(const GlobalOptions& given_global, const UpOptions& given_options) {
  GlobalOptions global = given_global;
  UpOptions options = given_options;
  auto supervisor = ops::control_supervisor();
  ProgressSink sink("up", {"rootfs", "started", "ready"}, global.level(), options.foreground || options.slurm_slice);
  std::optional<SliceTask> slice;
  if (options.slurm_slice) slice = SliceTask::begin(global, options, *supervisor, sink);

  // A probe socket per instance here, a pidfd and a pipe per instance in
  // the supervisor (which inherits this limit, and raises its own too when it
  // runs as a unit): the soft limit goes up to the hard limit first. The
  // containers get back the limit found here.
  ops::UpRequest request;
  request.open_files = raise_open_file_limit();
  request.restart = supervisor::parse_restart_policy(options.restart);
  request.ready = observe::parse_ready_spec(options.ready);
  request.strategy = parse_strategy(options.rootfs_strategy);

  auto start_fleet = [&]() -> ops::UpResult {
    request.expand_started = Clock::now();
    auto expanded = expand_from_options(options.expand);
    request.expand_ended = Clock::now();
    request.state_root = global.state_root;
    request.data_root = global.data_root;
    request.fleet = expanded.fleet_name;
    request.definition = std::filesystem::absolute(options.expand.definition).string();
    request.instances = std::move(expanded.instances);
    request.expansion = std::move(expanded.options);
    request.bootstrap_as_written = options.bootstrap == "as-written";
    request.parallel = options.parallel;
    request.stagger = std::chrono::milliseconds(options.stagger_ms);
    request.timeout = std::chrono::milliseconds(std::lround(options.timeout_s * 1000));
    request.no_wait = options.no_wait;
    request.atomic = options.atomic;
    request.foreground = options.foreground;
    request.nest_in_caller_cgroup = options.slurm_slice;
    request.allow_host_root = options.allow_host_root;
    request.log_max_bytes = options.log_max_bytes;
    request.interrupted = &interrupted_flag();
    request.on_locked = catch_interrupts;

    auto rootfs = rootfs_reporting_to(ops::engine_rootfs(global.data_root), sink);
    return ops::up(request, {*supervisor, *rootfs, ops::observed_readiness(request.ready), sink});
  };
  if (!slice) return finish_up(start_fleet(), request, options, *supervisor, sink);
  try {
    return finish_slice(*slice, start_fleet(), request, options, *supervisor, sink);
  } catch (const std::exception& e) {
    slice->report("failed", e.what());
    slice->end(*supervisor, sink);
    throw;
  }
}

int finish_up(const ops::UpResult& result, const ops::UpRequest& request, const UpOptions& options,
              ops::SupervisorClient& supervisor, ops::Sink& sink) {
  switch (result.outcome) {
    case ops::UpResult::Outcome::already_running:
      return kExitOk;
    case ops::UpResult::Outcome::interrupted:
      return kExitInterrupted;
    case ops::UpResult::Outcome::finished:
      break;
  }
  report(result, options, ports_by_index(request.instances));
  if (options.foreground) {
    if (result.atomic_rollback) return kExitFailed;
    return ops::stay_in_foreground(result, interrupted_flag(), supervisor, sink) ? kExitOk : kExitFailed;
  }
  return result.failures.empty() ? kExitOk : kExitFailed;
}

void add_supervise_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("supervise", "The fleet supervisor process (started by `up`)");
  cmd->group("");
  struct Args {
    std::string fleet, definition, restart = "no";
    unsigned spawners = 4, stagger_ms = 0;
    std::uint64_t log_max_bytes = 16u << 20;
    int notify_fd = -1;
    std::string cgroup_layout = "v1_hybrid", cgroup_dir, cgroup_unit;
    std::uint64_t container_open_files = 0;
    bool adopt = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--name", args->fleet)->required()->check(fleet_name_rule());
  cmd->add_option("--definition", args->definition);
  cmd->add_option("--restart", args->restart);
  cmd->add_option("--spawners", args->spawners)->check(whole_number_in(kParallelRange));
  cmd->add_option("--stagger", args->stagger_ms)->check(whole_number_in(kStaggerMsRange));
  cmd->add_option("--log-max-bytes", args->log_max_bytes)->check(whole_number_in(kLogMaxBytesRange));
  cmd->add_option("--notify-fd", args->notify_fd);
  cmd->add_option("--cgroup-layout", args->cgroup_layout);
  cmd->add_option("--cgroup-dir", args->cgroup_dir);
  cmd->add_option("--cgroup-unit", args->cgroup_unit);
  cmd->add_option("--container-nofile", args->container_open_files)->check(whole_number_in(kContainerOpenFilesRange));
  cmd->add_option("--adopt", args->adopt);
  cmd->callback([args, &global, &exit_status] {
    supervisor::SupervisorConfig config{{global.state_root, global.data_root, args->fleet},
                                        args->definition,
                                        supervisor::parse_restart_policy(args->restart),
                                        args->spawners,
                                        std::chrono::milliseconds(args->stagger_ms),
                                        args->log_max_bytes,
                                        args->notify_fd,
                                        {args->fleet, cgroups::layout_from_name(args->cgroup_layout),
                                         args->cgroup_dir, args->cgroup_unit},
                                        false,
                                        args->container_open_files,
                                        args->adopt};
    exit_status = supervisor::run_supervisor(config);
  });
}

}  // namespace

void add_up_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("up", "Start a fleet: one instance per port, supervised, and wait until it is ready");
  auto options = std::make_shared<UpOptions>();
  add_up_options(*cmd, *options);
  cmd->footer(
      "Example: one Apache+PHP instance per port 10001-10100, 8 started at a time, each ready once /index.php\n"
      "answers 2xx:\n"
      "  haco-fleet up --ports 10001-10100 --parallel 8 --ready http:/index.php templates/phpinfo.haco");
  cmd->callback([options, &global, &exit_status] {
    if (!running_as_root("up")) {
      exit_status = kExitBadInput;
      return;
    }
    exit_status = run_up(global, *options);
  });
  add_supervise_command(app, global, exit_status);
}

}  // namespace haco::cli
