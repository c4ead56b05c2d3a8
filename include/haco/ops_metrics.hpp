// `metrics`: the fleets in the Prometheus text exposition format (version
// 0.0.4), read from fleet.json and the instances' cgroup files only, so that
// it works with no supervisor running and opens no socket. Its output suits
// node-exporter's textfile collector: no timestamps, one HELP and one TYPE
// line per family, each family's samples together, a final newline.
//
// Families (docs/metrics.md):
//   haco_fleet_instances{fleet,state}                gauge, every state, 0 too
//   haco_fleet_supervisor_up{fleet}                  gauge, 1 when it runs
//   haco_instance_restarts_total{fleet,instance,port}  counter
//   haco_start_latency_seconds{fleet,phase}          histogram (_bucket{le}, _sum, _count)
//   haco_instance_cpu_usage_seconds_total{fleet,instance,port}  counter
//   haco_instance_memory_bytes{fleet,instance,port}  gauge
//   haco_instance_memory_limit_bytes{fleet,instance,port}  gauge, when a limit is set
// cpu and memory samples exist only for an instance whose init runs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "haco/state.hpp"

namespace haco::ops {

// What an instance's cgroup says of its use.
struct CgroupUsage {
  std::optional<double> cpu_seconds;               // v2 cpu.stat usage_usec, v1 cpuacct.usage
  std::optional<std::uint64_t> memory_bytes;       // v2 memory.current, v1 memory.usage_in_bytes
  std::optional<std::uint64_t> memory_limit_bytes;  // v2 memory.max, v1 memory.limit_in_bytes; none when unlimited
};

// Reads `dirs` (an instance's cgroup directories as recorded): each figure
// from the v1 file where a v1 directory among them has it (a hybrid host
// keeps the controllers there), else from the v2 file. A file missing or
// unreadable leaves its value out.
CgroupUsage read_cgroup_usage(const std::vector<std::string>& dirs);

// One fleet as `metrics` shows it.
struct FleetMetrics {
  state::FleetState state;
  bool supervised = false;                   // its supervisor runs
  std::map<std::string, CgroupUsage> usage;  // instance -> use, for those whose init runs
};

// The fleet `fleet` (ops::choose_fleet's checks: haco::InputError when it has
// no state; haco::Error when its state cannot be read), or every fleet under
// the state root when `fleet` is empty (none is no error). A fleet whose
// state vanishes while it is read is left out; with `fleet` empty, so is one
// whose state cannot be read, with why in `unreadable` ("web: ..."), so that
// one broken file does not hide the others from a collector.
std::vector<FleetMetrics> collect_metrics(const std::string& state_root, const std::string& data_root,
                                          const std::string& fleet, std::vector<std::string>* unreadable = nullptr);

// The text exposition format of `fleets`, families in a fixed order.
std::string format_metrics(const std::vector<FleetMetrics>& fleets);

// A label value as the text format wants it: backslash, double quote and
// line feed escaped.
std::string escape_label_value(std::string_view value);

}  // namespace haco::ops
