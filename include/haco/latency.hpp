// Per-instance phase latency: every phase of every instance is recorded as an
// interval of steady_clock time, from any thread; a summary gives the fleet's
// wall time, instances per second and p50/p95/p99/max per phase.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "haco/readiness.hpp"

namespace haco::observe {

// The phases `up` times for every instance. Any other name is accepted too;
// the summary lists these first, in this order, then others by first use.
namespace phase {
inline constexpr std::string_view expand = "expand";                // evaluating the definition for its port
inline constexpr std::string_view rootfs = "rootfs";                // preparing its root filesystem
inline constexpr std::string_view clone_to_exec = "clone_to_exec";  // clone3 until the init was exec'd
inline constexpr std::string_view exec_to_ready = "exec_to_ready";  // exec until the readiness probe passed
}  // namespace phase

struct PhaseInterval {
  InstanceId instance = 0;
  std::string phase;
  Clock::time_point start;
  Clock::time_point end;  // == start while the phase is still open
  bool finished = false;  // end() or record() was called
  bool ok = true;
  std::string error;      // why it failed, when !ok
};

struct InstanceTrack {
  InstanceId id = 0;
  std::string name;  // "web-10001"
};

// The name of `id` among `tracks`; "instance ID" for one never added.
std::string instance_name(const std::vector<InstanceTrack>& tracks, InstanceId id);

// Nearest-rank percentiles over the phase's successful intervals: for N
// sorted values, pP is the value of rank ceil(P/100 * N) (1-based), so p50 of
// {1,2,3,4} is 2 and p99 of 10 values is the maximum. Every reported value is
// one that was measured; none is interpolated.
struct PhaseStats {
  std::string phase;
  std::size_t count = 0;   // successful intervals
  std::size_t failed = 0;  // intervals that ended in failure (not in the percentiles)
  double min_ms = 0;
  double mean_ms = 0;
  double p50_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

struct LatencySummary {
  double wall_seconds = 0;           // recorder start to finish() (or to now)
  std::size_t instances = 0;         // registered instances
  std::size_t failed_instances = 0;  // instances with at least one failed interval
  // (instances - failed_instances) / wall_seconds; 0 when no time passed.
  double instances_per_second = 0;
  std::vector<PhaseStats> phases;
};

// Nearest-rank percentile of `sorted` (ascending, non-empty), P in (0, 100].
double nearest_rank_percentile(const std::vector<double>& sorted, double percent);

class LatencyRecorder {
 public:
  // The fleet's clock starts now (or at `start`): trace timestamps and the
  // wall time are measured from it.
  LatencyRecorder();
  explicit LatencyRecorder(Clock::time_point start);

  // Names an instance (its trace track). Intervals of unnamed instances are
  // recorded too and shown as "instance N".
  void add_instance(InstanceId id, std::string name);

  // Opens `phase` for `id`; end() closes it. Re-opening an open phase moves
  // its start.
  void begin(InstanceId id, std::string_view phase, Clock::time_point at = Clock::now());
  // Closes the open `phase` of `id`, successful or not. A phase that was
  // never begun is recorded as starting and ending at `at`.
  void end(InstanceId id, std::string_view phase, Clock::time_point at = Clock::now());
  void fail(InstanceId id, std::string_view phase, std::string error, Clock::time_point at = Clock::now());
  // A whole interval at once (measured elsewhere, e.g. in another process).
  void record(InstanceId id, std::string_view phase, Clock::time_point start, Clock::time_point end,
              bool ok = true, std::string error = {});
  // The fleet is done: fixes the wall time's end.
  void finish(Clock::time_point at = Clock::now());

  Clock::time_point start_time() const { return start_; }
  std::optional<Clock::time_point> finish_time() const;
  // Snapshots, safe while other threads record.
  std::vector<PhaseInterval> intervals() const;
  std::vector<InstanceTrack> instances() const;
  LatencySummary summary() const;

 private:
  // Removes `phase` of `id` from the open ones and returns it (null if not open).
  PhaseInterval* take_open(InstanceId id, std::string_view phase);

  const Clock::time_point start_;
  mutable std::mutex mutex_;
  std::optional<Clock::time_point> finish_;
  std::map<InstanceId, std::string> tracks_;  // instance names
  std::vector<PhaseInterval> intervals_;
  // Index into intervals_ of each open phase.
  std::map<std::pair<InstanceId, std::string>, std::size_t> open_;
};

// A fixed-width table for a terminal:
//   142 instances in 3.21 s (44.2/s), 1 failed
//   phase            count  failed     p50     p95     p99     max  (ms)
//   rootfs             142       0    12.1    20.3    25.0    25.0
std::string format_summary(const LatencySummary& summary);
// {"wall_seconds":..,"instances":..,"failed_instances":..,"instances_per_second":..,
//  "percentile_method":"nearest-rank",
//  "phases":[{"phase":"rootfs","count":..,"failed":..,"min_ms":..,"mean_ms":..,
//             "p50_ms":..,"p95_ms":..,"p99_ms":..,"max_ms":..}, ...]}
nlohmann::json summary_to_json(const LatencySummary& summary);

}  // namespace haco::observe
