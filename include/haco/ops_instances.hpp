// Day-2 operations on chosen instances of a running fleet: `stop`, `start`
// and `restart` (at once or rolling, one batch at a time), over the fleet's
// supervisor. The instances stay in the fleet (`down --ports` removes them).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "haco/ops.hpp"

namespace haco::ops {

// Which instances: those on `ports` (fleet::parse_port_range's form) of the
// fleet `fleet` (empty: the only one, ops::choose_fleet), every instance
// when `ports` is empty.
struct InstanceSelection {
  std::string state_root;
  std::string data_root;
  std::string fleet;
  std::string ports;
};

struct StopInstancesRequest {
  InstanceSelection which;
  // Then SIGKILL to the instance's cgroup.
  std::chrono::milliseconds timeout{10000};
};

struct StopInstancesResult {
  std::string fleet;
  std::vector<std::string> stopped;
  std::vector<std::string> not_running;  // already stopped, exited or failed: left as they are
};

// Stops the chosen instances that run, under the fleet's lock. Throws
// haco::InputError for a fleet or port that is not there, haco::Error when
// the fleet's supervisor does not answer (`up` takes a fleet over).
StopInstancesResult stop_instances(const StopInstancesRequest& request, SupervisorClient& supervisor, Sink& sink);

struct StartInstancesRequest {
  InstanceSelection which;
  std::chrono::milliseconds timeout{60000};  // until ready
  bool no_wait = false;
  // Ctrl-C: stop waiting (what started keeps running). `on_locked` runs
  // once the fleet's lock is held (the caller starts catching Ctrl-C there:
  // before, Ctrl-C just ends the command, which has changed nothing).
  const std::atomic<bool>* interrupted = nullptr;
  std::function<void()> on_locked;
};

struct StartInstancesResult {
  std::string fleet;
  std::vector<std::string> started;          // sent to the supervisor
  std::vector<std::string> already_running;  // left as they are
  std::map<std::string, std::string> failures;  // instance -> printable reason
  std::size_t ready = 0;
  bool interrupted = false;
  // restart --rolling: the instances not reached because a batch failed.
  std::vector<std::string> not_reached;
};

struct InstanceServices {
  SupervisorClient& supervisor;
  ProberFactory probers;
  Sink& sink;
};

// Starts the chosen instances that do not run, from their records (the
// spec, rootfs and log `up` prepared; the definition is not read again),
// and waits until each is ready or failed, under the fleet's lock.
StartInstancesResult start_instances(const StartInstancesRequest& request, InstanceServices services);

struct RestartInstancesRequest {
  StartInstancesRequest start;
  std::chrono::milliseconds stop_timeout{10000};
  // One batch of `batch` instances at a time, each ready before the next is
  // stopped; the first batch with a failure ends the restart.
  bool rolling = false;
  unsigned batch = 1;
};

// Stops the chosen instances (those running), then starts them all again;
// with `rolling`, batch by batch.
StartInstancesResult restart_instances(const RestartInstancesRequest& request, InstanceServices services);

}  // namespace haco::ops
