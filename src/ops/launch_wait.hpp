// Starting records through the fleet's supervisor and waiting until each is
// ready or failed: the part of `up` that `start` and `restart` share.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "haco/latency.hpp"
#include "haco/ops.hpp"

namespace haco::ops {

// Keeps the first reason given for `name`, in printable form (a reason can
// carry what a container wrote), and reports it on `sink`.
void record_failure(std::map<std::string, std::string>& failures, Sink& sink, const std::string& name,
                    const std::string& reason);

struct LaunchWait {
  const state::FleetPaths& paths;
  SupervisorClient& supervisor;
  const ProberFactory& probers;
  Sink& sink;
  // From now, for readiness; launches that never answered get 5 s more.
  std::chrono::milliseconds timeout{60000};
  bool no_wait = false;                          // return once every launch is answered
  const std::atomic<bool>* interrupted = nullptr;  // stop waiting (checked every 50 ms)
  // The phases clone_to_exec and exec_to_ready of each record, under its
  // spec.index (`up`: one expansion, whose phases the recorder has under the
  // same ids) or, with recorder_by_position, its position in the records
  // (`start`, `restart`: records of several expansions may share an index);
  // none when null.
  observe::LatencyRecorder* recorder = nullptr;
  bool recorder_by_position = false;
  // After each instance that became ready: how many are, of how many.
  std::function<void(std::size_t ready, std::size_t expected)> on_ready;
};

// Sends one start request for the records that have no entry in `failures`
// and follows the supervisor's answers: a started record gets its process,
// then is probed until ready; one that fails, exits before it is ready (and
// is not restarted), is not ready by the deadline or is never answered gets
// its reason in `failures`. Returns the number of records that became ready.
std::size_t launch_and_wait(const LaunchWait& how, std::vector<state::InstanceRecord>& records,
                            std::map<std::string, std::string>& failures);

// The phases `recorder` timed successfully for each of `records`, found by
// the name the recorder was given for its id (add_instance), as the
// supervisor keeps them (state::PhaseLatency); records with none are left
// out.
std::vector<supervisor::protocol::MeasuredStart> measured_starts(const observe::LatencyRecorder& recorder,
                                                                 const std::vector<state::InstanceRecord>& records);

// Hands measured_starts to the fleet's supervisor, so that `metrics` finds
// them later. What it cannot keep is a warning on `sink`, never a failure of
// the command.
void keep_start_latencies(SupervisorClient& supervisor, const state::FleetPaths& paths,
                          const observe::LatencyRecorder& recorder,
                          const std::vector<state::InstanceRecord>& records, Sink& sink);

// The last lines of an instance's log, for a failure message ("; its log
// (PATH) ends with: ..."); empty when it wrote nothing.
std::string log_tail(const std::string& path);

}  // namespace haco::ops
