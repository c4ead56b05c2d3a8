// `stop`, `start` and `restart` of chosen instances, through the fleet's
// supervisor, under the fleet's lock.
#include <algorithm>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops_instances.hpp"
#include "haco/ops_select.hpp"
#include "ops/launch_wait.hpp"

namespace haco::ops {
namespace {

using state::InstanceRecord;
using state::InstanceState;

// The fleet, its lock and the chosen records, read under the lock.
struct Chosen {
  state::FleetPaths paths;
  state::FleetLock lock;
  std::vector<InstanceRecord> records;
};

Chosen choose(const InstanceSelection& which, std::string_view role, SupervisorClient& supervisor,
              const std::function<void()>& on_locked = {}) {
  auto paths = choose_fleet(which.state_root, which.data_root, which.fleet);
  auto lock = state::FleetLock::acquire(paths, true, role);
  if (on_locked) on_locked();
  auto fleet = load_fleet(paths);
  std::vector<InstanceRecord> records;
  if (which.ports.empty()) {
    records = fleet.instances;
  } else {
    for (const auto* r : instances_on_ports(fleet, which.ports)) records.push_back(*r);
  }
  if (!state::is_alive(fleet.supervisor) || !supervisor.answers(paths))
    throw Error(fmt::format("the supervisor of fleet '{}' is not running: `haco-fleet up` takes the fleet over "
                            "(adopting what still runs), then {} again",
                            paths.fleet, role));
  return {std::move(paths), std::move(lock), std::move(records)};
}

// Starts `records` and waits for them; fills `result`.
void start_and_wait(const StartInstancesRequest& request, const state::FleetPaths& paths,
                    std::vector<InstanceRecord> records, InstanceServices& services, StartInstancesResult& result) {
  if (records.empty()) return;
  for (auto& r : records) r.process = {};
  LaunchWait how{paths, services.supervisor, services.probers, services.sink};
  how.timeout = request.timeout;
  how.no_wait = request.no_wait;
  how.interrupted = request.interrupted;
  observe::LatencyRecorder recorder;
  how.recorder = &recorder;
  how.recorder_by_position = true;
  for (std::size_t k = 0; k < records.size(); ++k) {
    result.started.push_back(records[k].name());
    recorder.add_instance(k, records[k].name());
  }
  result.ready += launch_and_wait(how, records, result.failures);
  recorder.finish();
  if (request.interrupted && request.interrupted->load()) result.interrupted = true;
  else keep_start_latencies(services.supervisor, paths, recorder, records, services.sink);
}

}  // namespace

StopInstancesResult stop_instances(const StopInstancesRequest& request, SupervisorClient& supervisor, Sink& sink) {
  auto chosen = choose(request.which, "stop", supervisor);
  StopInstancesResult result;
  result.fleet = chosen.paths.fleet;
  for (const auto& r : chosen.records)
    (state::is_active(r.state) ? result.stopped : result.not_running).push_back(r.name());
  for (const auto& name : result.not_running) sink.message(name + ": not running (left as it is)");
  if (result.stopped.empty()) return result;
  sink.begin(result.stopped.size());
  supervisor.stop(chosen.paths, result.stopped, request.timeout);
  for (const auto& name : result.stopped) sink.step("stopped", name, std::nullopt);
  sink.finish();
  return result;
}

StartInstancesResult start_instances(const StartInstancesRequest& request, InstanceServices services) {
  auto chosen = choose(request.which, "start", services.supervisor, request.on_locked);
  StartInstancesResult result;
  result.fleet = chosen.paths.fleet;
  std::vector<InstanceRecord> to_start;
  for (auto& r : chosen.records) {
    if (state::is_active(r.state)) {
      result.already_running.push_back(r.name());
    } else {
      to_start.push_back(std::move(r));
    }
  }
  for (const auto& name : result.already_running) services.sink.message(name + ": already running");
  if (to_start.empty()) return result;
  services.sink.begin(to_start.size());
  start_and_wait(request, chosen.paths, std::move(to_start), services, result);
  services.sink.finish();
  return result;
}

StartInstancesResult restart_instances(const RestartInstancesRequest& request, InstanceServices services) {
  auto chosen = choose(request.start.which, "restart", services.supervisor, request.start.on_locked);
  StartInstancesResult result;
  result.fleet = chosen.paths.fleet;
  if (chosen.records.empty()) return result;
  const std::size_t batch =
      request.rolling ? std::max<std::size_t>(1, request.batch) : std::max<std::size_t>(1, chosen.records.size());
  services.sink.begin(chosen.records.size());
  for (std::size_t first = 0; first < chosen.records.size(); first += batch) {
    const bool interrupted = request.start.interrupted && request.start.interrupted->load();
    if (!result.failures.empty() || interrupted) {
      for (std::size_t i = first; i < chosen.records.size(); ++i) result.not_reached.push_back(chosen.records[i].name());
      result.interrupted = result.interrupted || interrupted;
      break;
    }
    std::vector<InstanceRecord> records(chosen.records.begin() + first,
                                        chosen.records.begin() + std::min(first + batch, chosen.records.size()));
    std::vector<std::string> running;
    for (const auto& r : records)
      if (state::is_active(r.state)) running.push_back(r.name());
    if (!running.empty()) {
      services.supervisor.stop(chosen.paths, running, request.stop_timeout);
      for (const auto& name : running) services.sink.step("stopped", name, std::nullopt);
    }
    start_and_wait(request.start, chosen.paths, std::move(records), services, result);
  }
  services.sink.finish();
  if (!result.not_reached.empty() && !result.interrupted)
    services.sink.message(fmt::format("restart --rolling: a batch failed; {} instance{} not restarted (still on "
                                      "their previous run)",
                                      result.not_reached.size(), result.not_reached.size() == 1 ? "" : "s"));
  return result;
}

}  // namespace haco::ops
