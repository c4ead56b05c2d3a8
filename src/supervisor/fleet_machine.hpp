// The supervisor's decisions, without the world: the instances' records and
// states, the start queue and its dispatch to spawner slots, the stagger, the
// restart policy, stop / forget / shutdown and which requests are answered.
// It opens no descriptor and makes no system call. Each event (a request, a
// launch result, an exit, a timer) returns the effects the supervisor carries
// out, in order: launch X on spawner K, signal X, kill X's cgroup, arm a
// timer, send a reply to the client of operation O, save the state. A clock is
// injected, so that tests drive time.
//
// Operations are the requests that wait for instances (start, stop,
// shutdown), named by an id the caller chooses; a reply for an operation
// whose client is gone is dropped by the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "haco/control_protocol.hpp"
#include "haco/state.hpp"
#include "haco/supervisor.hpp"

namespace haco::supervisor {

class FleetClock {
 public:
  virtual ~FleetClock() = default;
  // For dispatch order and the stagger.
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // For the records' start and exit times.
  virtual std::int64_t unix_now_ms() const = 0;
};

// steady_clock and the wall clock.
class SystemClock final : public FleetClock {
 public:
  std::chrono::steady_clock::time_point now() const override;
  std::int64_t unix_now_ms() const override;
};

using OperationId = std::uint64_t;

namespace effect {

// Send the launch request of `instance` to spawner `spawner` (with a fresh
// output pipe). A send that fails is reported with launch_failed.
struct Launch {
  std::string instance;
  unsigned spawner = 0;
};
// Send each instance its stop signal (through its pidfd). With
// `kill_if_deaf`, an init that would never see it (pid 1 of its namespace
// without a handler) is killed by cgroup at once.
struct SignalStop {
  std::vector<std::string> instances;
  bool kill_if_deaf = false;
};
// SIGKILL to the init and to everything in the instance's cgroup.
struct Kill {
  std::vector<std::string> instances;
};
// Call restart_due(instance) after `delay`.
struct ArmRestartTimer {
  std::string instance;
  std::chrono::milliseconds delay{0};
};
// Call stagger_due() at `at`.
struct ArmStaggerTimer {
  std::chrono::steady_clock::time_point at;
};
// Call stop_deadline_passed(operation) after `after`.
struct ArmStopDeadline {
  OperationId operation = 0;
  std::chrono::milliseconds after{0};
};
// The stop operation is answered: its deadline timer can go.
struct CancelStopDeadline {
  OperationId operation = 0;
};
// Create or rotate the instance's log before its first launch.
struct PrepareLog {
  std::string path;
};
// Send `reply` to the client of `operation`.
struct Reply {
  OperationId operation = 0;
  protocol::Reply reply;
};
// Send `event` to the client of `operation` once what the instance's last
// launch wrote is in its log.
struct ReplyAfterOutput {
  OperationId operation = 0;
  protocol::ExitedEvent event;
};
// The instance's record left the fleet.
struct Forgotten {
  std::string instance;
};
// Write fleet.json now (before a clone, before an answer).
struct SaveStateNow {};
// Write fleet.json soon.
struct StateChanged {};
// Every instance stopped after a shutdown: the supervisor ends.
struct ShutDown {};
// A line for the supervisor's log.
struct Log {
  std::string line;
};
// Write `limits` into the running instance's cgroup now (read back from the
// kernel) and report the outcome with limits_written before the next effect.
struct WriteLimits {
  OperationId operation = 0;
  protocol::InstanceLimits limits;
};

}  // namespace effect

using Effect = std::variant<effect::Launch, effect::SignalStop, effect::Kill, effect::ArmRestartTimer,
                            effect::ArmStaggerTimer, effect::ArmStopDeadline, effect::CancelStopDeadline,
                            effect::PrepareLog, effect::Reply, effect::ReplyAfterOutput, effect::Forgotten,
                            effect::SaveStateNow, effect::StateChanged, effect::ShutDown, effect::Log,
                            effect::WriteLimits>;
using Effects = std::vector<Effect>;

struct FleetMachineConfig {
  RestartPolicy restart;
  unsigned spawners = 1;
  std::chrono::milliseconds stagger{0};
};

class FleetMachine {
 public:
  FleetMachine(FleetMachineConfig config, const FleetClock& clock);

  // --- taking over a fleet whose supervisor died ---------------------------

  enum class Adopted { running, ended, kept };
  // A record of the previous supervisor. `init_alive`: its init still runs
  // (pidfd opened, start time checked) and is watched again: running. An
  // instance recorded active whose init is gone becomes failed: ended.
  Adopted adopt(state::InstanceRecord record, bool init_alive);
  void set_restart_policy(const RestartPolicy& policy) { config_.restart = policy; }

  // --- requests --------------------------------------------------------------

  // Start `records`: an instance already running (or launching, or waiting to
  // restart) is refused with a FailedEvent; the others are queued and
  // answered one by one, then Done. Refused as a whole while shutting down.
  Effects start(OperationId operation, std::vector<state::InstanceRecord> records);
  // Refuse every record of a start request with `reason`, then Done.
  Effects refuse_start(OperationId operation, const std::vector<state::InstanceRecord>& records,
                       const std::string& reason);
  // Stop `names`, answered with Done once none of them runs; their cgroups
  // are killed after `timeout`. `forget`: their records then leave the
  // fleet. `shutdown`: new starts are refused, and the supervisor ends once
  // they stopped.
  Effects stop(OperationId operation, const std::vector<std::string>& names, std::chrono::milliseconds timeout,
               bool forget, bool shutdown);

  // New cgroup limits (reload). A running instance gets them written into
  // its cgroup (effect::WriteLimits, answered by limits_written); one
  // waiting to restart takes them for its next launch; any other (being
  // started or stopped, not running, unknown) is answered with a
  // FailedEvent saying why. Then the state is saved and Done is sent.
  Effects update_limits(OperationId operation, const std::vector<protocol::InstanceLimits>& updates);
  // The outcome of an effect::WriteLimits: `error` empty when every setting
  // is in the cgroup, and the record (its cgroup settings and spec_hash)
  // then holds them.
  Effects limits_written(OperationId operation, const protocol::InstanceLimits& limits, const std::string& error);

  // Starts measured by a client (RecordLatenciesRequest): each phase is
  // added to its record's start_latency; an unknown instance or a refused
  // phase is answered with a FailedEvent. Then the state is saved and Done
  // is sent.
  Effects record_latencies(OperationId operation, const std::vector<protocol::MeasuredStart>& starts);

  // --- spawners --------------------------------------------------------------

  // The launch on `spawner` started the container (`process`: its init).
  // A launch no client waits for (a restart by the policy) has its
  // clone_to_exec phase added to the record's start_latency here: no client
  // measures it, and nobody probes its readiness.
  Effects launch_succeeded(unsigned spawner, const state::ProcessIdentity& process,
                           std::vector<std::string> cgroup_paths, std::int64_t clone_started_ns,
                           std::int64_t exec_done_ns);
  // The launch on `spawner` failed (the spawner stays usable).
  Effects launch_failed(unsigned spawner, const std::string& error);
  // The spawner cannot be used until spawner_replaced: what it was launching
  // failed with `error`.
  Effects spawner_lost(unsigned spawner, const std::string& error);
  Effects spawner_replaced(unsigned spawner);

  // --- instances and timers --------------------------------------------------

  // The init of a running instance ended (`exit`: code or signal).
  Effects instance_exited(const std::string& name, state::ExitRecord exit);
  Effects restart_due(const std::string& name);
  Effects stagger_due();
  Effects stop_deadline_passed(OperationId operation);

  // --- what the supervisor reads ----------------------------------------------

  const state::InstanceRecord* record(const std::string& name) const;
  // Instance names in the order they were first started (fleet.json's order).
  const std::vector<std::string>& order() const { return order_; }
  std::vector<std::string> names() const;
  // The instance a spawner is launching, if any.
  std::optional<std::string> launching_on(unsigned spawner) const;
  bool shutting_down() const { return shutting_down_; }
  // The names whose records changed (or left) since the last call: only
  // those are serialized again.
  std::set<std::string> take_changed();

 private:
  struct Instance {
    state::InstanceRecord record;
    bool running = false;     // its init is watched
    bool launching = false;   // a spawner is on it
    bool stop_requested = false;
    bool restart_pending = false;
    OperationId watcher = 0;  // the start that launched it: told when it exits
  };
  struct StartOperation {
    std::set<std::string> waiting;
  };
  struct StopOperation {
    std::set<std::string> waiting;
    std::set<std::string> forget;
    bool shutdown = false;
  };

  state::InstanceRecord& change(Instance& instance);
  void dispatch(Effects& out);
  void fail_launch(const std::string& name, const std::string& error, Effects& out);
  void notify_started(const std::string& name, protocol::Reply event, Effects& out);
  void instance_gone(const std::string& name, Effects& out);
  void finish_stops(Effects& out);
  void take_limits(Instance& instance, const protocol::InstanceLimits& limits, Effects& out);

  FleetMachineConfig config_;
  const FleetClock& clock_;
  std::map<std::string, Instance> instances_;
  std::vector<std::string> order_;
  std::deque<std::string> queue_;
  // Per spawner: the instance it launches ("" idle); nullopt while lost.
  std::vector<std::optional<std::string>> spawners_;
  std::optional<std::chrono::steady_clock::time_point> last_dispatch_;
  bool stagger_armed_ = false;
  bool shutting_down_ = false;
  std::map<std::string, OperationId> starting_;  // instance -> its start operation
  std::map<OperationId, StartOperation> starts_;
  std::map<OperationId, StopOperation> stops_;  // in the order they came
  std::set<std::string> changed_;
};

}  // namespace haco::supervisor
