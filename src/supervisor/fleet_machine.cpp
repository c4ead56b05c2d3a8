// The supervisor's decisions (fleet_machine.hpp).
#include "supervisor/fleet_machine.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace haco::supervisor {

using state::InstanceRecord;
using state::InstanceState;

// observe::phase::clone_to_exec; this library does not link haco_observe.
constexpr std::string_view observe_phase_clone_to_exec = "clone_to_exec";

std::chrono::steady_clock::time_point SystemClock::now() const { return std::chrono::steady_clock::now(); }
std::int64_t SystemClock::unix_now_ms() const { return state::unix_now_ms(); }

FleetMachine::FleetMachine(FleetMachineConfig config, const FleetClock& clock)
    : config_(config), clock_(clock), spawners_(std::max(1u, config.spawners), std::string()) {}

InstanceRecord& FleetMachine::change(Instance& instance) {
  changed_.insert(instance.record.name());
  return instance.record;
}

std::set<std::string> FleetMachine::take_changed() { return std::exchange(changed_, {}); }

const InstanceRecord* FleetMachine::record(const std::string& name) const {
  auto it = instances_.find(name);
  return it == instances_.end() ? nullptr : &it->second.record;
}

std::vector<std::string> FleetMachine::names() const {
  std::vector<std::string> names;
  for (const auto& [name, instance] : instances_) names.push_back(name);
  return names;
}

std::optional<std::string> FleetMachine::launching_on(unsigned spawner) const {
  if (spawner >= spawners_.size() || !spawners_[spawner] || spawners_[spawner]->empty()) return std::nullopt;
  return *spawners_[spawner];
}

FleetMachine::Adopted FleetMachine::adopt(InstanceRecord record, bool init_alive) {
  const std::string name = record.name();
  Instance& instance = instances_[name];
  instance = Instance{};
  instance.record = std::move(record);
  changed_.insert(name);
  if (std::find(order_.begin(), order_.end(), name) == order_.end()) order_.push_back(name);
  if (init_alive) {
    change(instance).state = InstanceState::running;
    instance.running = true;
    return Adopted::running;
  }
  if (!state::is_active(instance.record.state)) return Adopted::kept;
  InstanceRecord& ended = change(instance);
  ended.state = InstanceState::failed;
  ended.process = {};
  ended.error = "ended while no supervisor ran (exit status unknown)";
  return Adopted::ended;
}

// --- starting -----------------------------------------------------------------

Effects FleetMachine::refuse_start(OperationId operation, const std::vector<InstanceRecord>& records,
                                   const std::string& reason) {
  Effects out;
  for (const auto& record : records) out.push_back(effect::Reply{operation, protocol::FailedEvent{record.name(), reason}});
  out.push_back(effect::Reply{operation, protocol::Done{}});
  return out;
}

Effects FleetMachine::start(OperationId operation, std::vector<InstanceRecord> records) {
  Effects out;
  if (shutting_down_) {
    out.push_back(effect::Reply{operation, protocol::Done{"the fleet is shutting down", std::nullopt}});
    return out;
  }
  StartOperation& start = starts_[operation];
  std::vector<std::string> accepted;
  for (auto& record : records) {
    auto name = record.name();
    auto existing = instances_.find(name);
    if (existing != instances_.end() &&
        (existing->second.running || existing->second.launching ||
         existing->second.record.state == InstanceState::restarting)) {
      out.push_back(effect::Reply{operation, protocol::FailedEvent{name, "already running"}});
      continue;
    }
    record.state = InstanceState::starting;
    record.process = {};
    record.error.clear();
    // Its history goes on across a new start.
    if (existing != instances_.end()) {
      record.recent_exits = existing->second.record.recent_exits;
      record.start_latency = existing->second.record.start_latency;
    }
    Instance& instance = instances_[name];
    instance = Instance{};
    instance.record = std::move(record);
    changed_.insert(name);
    instance.watcher = operation;
    out.push_back(effect::PrepareLog{instance.record.log_path});
    start.waiting.insert(name);
    starting_[name] = operation;
    accepted.push_back(name);
  }
  for (const auto& name : accepted)
    if (std::find(order_.begin(), order_.end(), name) == order_.end()) order_.push_back(name);
  for (const auto& name : accepted) queue_.push_back(name);
  // On disk before any of them is cloned: a supervisor killed from here on
  // leaves records that the next `up` or `down` goes by.
  out.push_back(effect::SaveStateNow{});
  if (start.waiting.empty()) {
    starts_.erase(operation);
    out.push_back(effect::SaveStateNow{});
    out.push_back(effect::Reply{operation, protocol::Done{}});
  }
  dispatch(out);
  return out;
}

void FleetMachine::dispatch(Effects& out) {
  while (!queue_.empty()) {
    auto idle = std::find_if(spawners_.begin(), spawners_.end(), [](const auto& s) { return s && s->empty(); });
    if (idle == spawners_.end()) return;
    const auto now = clock_.now();
    if (config_.stagger.count() > 0 && last_dispatch_ && now < *last_dispatch_ + config_.stagger) {
      if (!stagger_armed_) {
        stagger_armed_ = true;
        out.push_back(effect::ArmStaggerTimer{*last_dispatch_ + config_.stagger});
      }
      return;
    }
    auto name = queue_.front();
    queue_.pop_front();
    auto it = instances_.find(name);
    if (it == instances_.end() || it->second.stop_requested) continue;
    last_dispatch_ = now;
    **idle = name;
    it->second.launching = true;
    out.push_back(effect::Launch{name, static_cast<unsigned>(idle - spawners_.begin())});
  }
}

Effects FleetMachine::stagger_due() {
  Effects out;
  stagger_armed_ = false;
  dispatch(out);
  return out;
}

Effects FleetMachine::launch_succeeded(unsigned spawner, const state::ProcessIdentity& process,
                                       std::vector<std::string> cgroup_paths, std::int64_t clone_started_ns,
                                       std::int64_t exec_done_ns) {
  Effects out;
  if (spawner >= spawners_.size() || !spawners_[spawner]) return out;
  const std::string name = std::exchange(*spawners_[spawner], std::string());
  auto it = instances_.find(name);
  if (it != instances_.end()) {
    Instance& instance = it->second;
    instance.launching = false;
    instance.running = true;
    InstanceRecord& record = change(instance);
    record.process = process;
    record.cgroup_paths = std::move(cgroup_paths);
    record.state = InstanceState::running;
    record.started_at_unix_ms = clock_.unix_now_ms();
    record.error.clear();
    if (!starting_.count(name) && exec_done_ns >= clone_started_ns)
      state::add_start_latency(record, observe_phase_clone_to_exec, double(exec_done_ns - clone_started_ns) / 1e9);
    out.push_back(effect::Log{fmt::format("{} started: pid {}", name, process.pid)});
    notify_started(name,
                   protocol::StartedEvent{name, process.pid, process.start_time, clone_started_ns, exec_done_ns},
                   out);
    if (instance.stop_requested) out.push_back(effect::SignalStop{{name}, false});
    out.push_back(effect::StateChanged{});
  }
  dispatch(out);
  return out;
}

Effects FleetMachine::launch_failed(unsigned spawner, const std::string& error) {
  Effects out;
  if (spawner >= spawners_.size() || !spawners_[spawner]) return out;
  const std::string name = std::exchange(*spawners_[spawner], std::string());
  if (!name.empty()) fail_launch(name, error, out);
  dispatch(out);
  return out;
}

Effects FleetMachine::spawner_lost(unsigned spawner, const std::string& error) {
  Effects out;
  if (spawner >= spawners_.size() || !spawners_[spawner]) return out;
  const std::string name = *spawners_[spawner];
  spawners_[spawner].reset();
  if (!name.empty()) fail_launch(name, error, out);
  return out;
}

Effects FleetMachine::spawner_replaced(unsigned spawner) {
  Effects out;
  if (spawner >= spawners_.size()) return out;
  if (!spawners_[spawner]) spawners_[spawner] = std::string();
  out.push_back(effect::StateChanged{});
  dispatch(out);
  return out;
}

void FleetMachine::fail_launch(const std::string& name, const std::string& error, Effects& out) {
  auto it = instances_.find(name);
  if (it == instances_.end()) return;
  Instance& instance = it->second;
  instance.launching = false;
  InstanceRecord& record = change(instance);
  record.state = instance.stop_requested ? InstanceState::stopped : InstanceState::failed;
  record.error = error;
  out.push_back(effect::Log{fmt::format("{} failed to start: {}", name, error)});
  notify_started(name, protocol::FailedEvent{name, error}, out);
  instance_gone(name, out);
  out.push_back(effect::StateChanged{});
}

void FleetMachine::notify_started(const std::string& name, protocol::Reply event, Effects& out) {
  auto it = starting_.find(name);
  if (it == starting_.end()) return;
  const OperationId operation = it->second;
  starting_.erase(it);
  out.push_back(effect::Reply{operation, std::move(event)});
  auto start = starts_.find(operation);
  if (start == starts_.end()) return;
  start->second.waiting.erase(name);
  if (!start->second.waiting.empty()) return;
  starts_.erase(start);
  out.push_back(effect::SaveStateNow{});
  out.push_back(effect::Reply{operation, protocol::Done{}});
}

// --- exits and restarts -----------------------------------------------------

Effects FleetMachine::instance_exited(const std::string& name, state::ExitRecord exit) {
  Effects out;
  auto it = instances_.find(name);
  if (it == instances_.end() || !it->second.running) return out;
  Instance& instance = it->second;
  instance.running = false;
  InstanceRecord& record = change(instance);
  exit.at_unix_ms = clock_.unix_now_ms();
  record.last_exit = exit;
  record.process = {};
  out.push_back(effect::Log{fmt::format("{} ended: {}", name, state::describe_exit(exit))});
  if (instance.stop_requested) {
    record.state = InstanceState::stopped;
  } else if (should_restart(config_.restart, exit, record.restarts)) {
    record.state = InstanceState::restarting;
    instance.restart_pending = true;
    out.push_back(effect::ArmRestartTimer{name, restart_delay(record.restarts)});
    ++record.restarts;
  } else {
    record.state = (exit.signal == 0 && exit.code == 0) ? InstanceState::exited : InstanceState::failed;
  }
  record.recent_exits.push_back({exit, record.state == InstanceState::restarting, instance.stop_requested});
  if (record.recent_exits.size() > state::kRecentExitsKept) record.recent_exits.erase(record.recent_exits.begin());
  // The `up` that started it may still wait for it to be ready; it reads the
  // log, so the event goes once what the init wrote is there.
  if (instance.watcher != 0)
    out.push_back(effect::ReplyAfterOutput{
        instance.watcher,
        protocol::ExitedEvent{name, state::describe_exit(exit), record.state == InstanceState::restarting}});
  instance_gone(name, out);
  out.push_back(effect::StateChanged{});
  return out;
}

Effects FleetMachine::restart_due(const std::string& name) {
  Effects out;
  auto it = instances_.find(name);
  if (it == instances_.end() || !it->second.restart_pending || it->second.stop_requested) return out;
  it->second.restart_pending = false;
  change(it->second).state = InstanceState::starting;
  queue_.push_back(name);
  dispatch(out);
  return out;
}

// --- measured starts -----------------------------------------------------------

Effects FleetMachine::record_latencies(OperationId operation, const std::vector<protocol::MeasuredStart>& starts) {
  Effects out;
  for (const auto& start : starts) {
    auto it = instances_.find(start.instance);
    if (it == instances_.end()) {
      out.push_back(effect::Reply{operation, protocol::FailedEvent{start.instance, "the fleet has no such instance"}});
      continue;
    }
    std::vector<std::string> refused;
    InstanceRecord& record = change(it->second);
    for (const auto& [phase, seconds] : start.phases)
      if (!state::add_start_latency(record, phase, seconds)) refused.push_back(phase);
    if (!refused.empty())
      out.push_back(effect::Reply{
          operation, protocol::FailedEvent{start.instance, fmt::format("phase(s) not kept (a name other than "
                                                                       "[a-z0-9_], a negative duration or more "
                                                                       "than {} phases): {}",
                                                                       state::kLatencyPhasesKept,
                                                                       fmt::join(refused, ", "))}});
  }
  out.push_back(effect::SaveStateNow{});
  out.push_back(effect::Reply{operation, protocol::Done{}});
  return out;
}

// --- new limits -----------------------------------------------------------------

Effects FleetMachine::update_limits(OperationId operation, const std::vector<protocol::InstanceLimits>& updates) {
  Effects out;
  auto refuse = [&](const std::string& name, const std::string& why) {
    out.push_back(effect::Reply{operation, protocol::FailedEvent{name, why}});
  };
  for (const auto& limits : updates) {
    auto it = instances_.find(limits.instance);
    if (it == instances_.end()) {
      refuse(limits.instance, "the fleet has no such instance");
      continue;
    }
    Instance& instance = it->second;
    const std::string state_name(state::instance_state_name(instance.record.state));
    if (instance.launching)
      refuse(limits.instance, "it is being started: reload again once it runs");
    else if (instance.running && instance.stop_requested)
      refuse(limits.instance, "it is being stopped (" + state_name + ")");
    else if (instance.running)
      out.push_back(effect::WriteLimits{operation, limits});
    else
      // Waiting to restart, stopped, exited or failed: its next launch makes
      // its cgroups with the record's limits.
      take_limits(instance, limits, out);
  }
  out.push_back(effect::SaveStateNow{});
  out.push_back(effect::Reply{operation, protocol::Done{}});
  return out;
}

Effects FleetMachine::limits_written(OperationId operation, const protocol::InstanceLimits& limits,
                                     const std::string& error) {
  Effects out;
  auto it = instances_.find(limits.instance);
  if (!error.empty() || it == instances_.end()) {
    const std::string why = error.empty() ? "the fleet has no such instance" : error;
    out.push_back(effect::Log{fmt::format("{}: new cgroup limits not applied: {}", limits.instance, why)});
    out.push_back(effect::Reply{operation, protocol::FailedEvent{limits.instance, why}});
    return out;
  }
  take_limits(it->second, limits, out);
  return out;
}

void FleetMachine::take_limits(Instance& instance, const protocol::InstanceLimits& limits, Effects& out) {
  InstanceRecord& record = change(instance);
  record.spec.container.cgroup = limits.cgroup;
  record.spec_hash = state::spec_hash(record.spec);
  std::string settings;
  for (const auto& s : limits.cgroup) settings += fmt::format(" {}={}", s.key, s.value);
  out.push_back(effect::Log{fmt::format("{}: cgroup limits now{}", limits.instance, settings)});
  out.push_back(effect::StateChanged{});
}

// --- stopping -------------------------------------------------------------------

Effects FleetMachine::stop(OperationId operation, const std::vector<std::string>& names,
                           std::chrono::milliseconds timeout, bool forget, bool shutdown) {
  Effects out;
  if (shutdown) shutting_down_ = true;
  StopOperation stop;
  stop.shutdown = shutdown;
  std::vector<std::string> signalled;
  for (const auto& name : names) {
    auto it = instances_.find(name);
    if (it == instances_.end()) continue;
    Instance& instance = it->second;
    instance.stop_requested = true;
    instance.restart_pending = false;
    if (instance.running) {
      change(instance).state = InstanceState::stopping;
      signalled.push_back(name);
      stop.waiting.insert(name);
    } else if (instance.launching) {
      change(instance).state = InstanceState::stopping;
      stop.waiting.insert(name);
    } else if (instance.record.state == InstanceState::starting ||
               instance.record.state == InstanceState::restarting) {
      change(instance).state = InstanceState::stopped;
      notify_started(name, protocol::FailedEvent{name, "stopped before it started"}, out);
    }
  }
  if (!signalled.empty()) out.push_back(effect::SignalStop{signalled, true});
  // The latest request decides whether a record is forgotten once stopped.
  for (auto& [id, earlier] : stops_)
    for (const auto& name : names) earlier.forget.erase(name);
  if (forget) stop.forget.insert(names.begin(), names.end());
  out.push_back(effect::ArmStopDeadline{operation, timeout});
  stops_.emplace(operation, std::move(stop));
  out.push_back(effect::StateChanged{});
  finish_stops(out);
  return out;
}

Effects FleetMachine::stop_deadline_passed(OperationId operation) {
  Effects out;
  auto it = stops_.find(operation);
  if (it == stops_.end() || it->second.waiting.empty()) return out;
  // The stop signal was not enough: SIGKILL through the cgroup (every
  // process of the instance, not only its init).
  for (const auto& name : it->second.waiting)
    out.push_back(effect::Log{fmt::format("{} did not stop in time: killing its cgroup", name)});
  out.push_back(effect::Kill{{it->second.waiting.begin(), it->second.waiting.end()}});
  return out;
}

// Called whenever an instance stops running (exit, failed launch).
void FleetMachine::instance_gone(const std::string& name, Effects& out) {
  for (auto& [id, stop] : stops_) stop.waiting.erase(name);
  finish_stops(out);
}

void FleetMachine::finish_stops(Effects& out) {
  for (auto it = stops_.begin(); it != stops_.end();) {
    if (!it->second.waiting.empty()) {
      ++it;
      continue;
    }
    const OperationId operation = it->first;
    StopOperation stop = std::move(it->second);
    it = stops_.erase(it);
    out.push_back(effect::CancelStopDeadline{operation});
    for (const auto& name : stop.forget) {
      if (instances_.erase(name) == 0) continue;
      order_.erase(std::remove(order_.begin(), order_.end(), name), order_.end());
      starting_.erase(name);
      changed_.insert(name);
      out.push_back(effect::Forgotten{name});
    }
    out.push_back(effect::SaveStateNow{});
    out.push_back(effect::Reply{operation, protocol::Done{}});
    if (stop.shutdown) out.push_back(effect::ShutDown{});
  }
}

}  // namespace haco::supervisor
