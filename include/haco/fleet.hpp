// From a definition and a port range to a validated set of instances.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "haco/cgroup.hpp"
#include "haco/dsl.hpp"
#include "haco/spec.hpp"

namespace haco::fleet {

// "10001-10100", "10001,10005,10010-10020" (spaces tolerated). Throws
// haco::Error quoting the offending token for an empty, reversed, out of
// range (1..65535) or duplicated part.
std::vector<std::uint16_t> parse_port_range(std::string_view text);

// Host ids that a fleet must not map: users and groups of /etc/passwd and
// /etc/group, other users' /etc/subuid and /etc/subgid ranges, and the ranges
// of other running fleets.
struct HostIds {
  std::vector<std::pair<std::uint32_t, std::string>> uids;  // id, owner ("user root")
  std::vector<std::pair<std::uint32_t, std::string>> gids;
  struct Range {
    std::uint32_t start;
    std::uint32_t count;
    std::string owner;
  };
  std::vector<Range> reserved_uid_ranges;  // /etc/subuid, other fleets
  std::vector<Range> reserved_gid_ranges;  // /etc/subgid, other fleets
};
struct ExpandOptions {
  // Extra environment variable names that carry the port, besides PORT and
  // APACHE_PORT.
  std::vector<std::string> port_env_names;
  // Base environment (normally the caller's); the port variables override it.
  dsl::Environment base_environment;
  // Ranges held by others (other fleets), checked like /etc/subuid's.
  std::vector<HostIds::Range> reserved_uid_ranges;
  std::vector<HostIds::Range> reserved_gid_ranges;
  // Allow instances that share one rootfs and have no id mapping (the seed's
  // previous definition).
  bool allow_shared_rootfs = false;
  // pids.max given to each instance whose definition sets none, so that one
  // tenant's fork bomb cannot take every pid of the host ("max": no limit).
  std::string default_pids_max = cgroups::kDefaultPidsMax;
  // How long one port's evaluation may take (dsl::IsolatedEvaluator).
  std::chrono::milliseconds eval_timeout = dsl::kDefaultEvalTimeout;
};

// The ENV a definition sees for one port: `base` with the port under PORT,
// APACHE_PORT and each of `port_env_names`. Expansion builds every port's ENV
// here, and so must any later evaluation of the same definition for that port
// (the bootstrap block `up` runs), so that both see the same ENV.
dsl::Environment port_environment(dsl::Environment base, std::uint16_t port,
                                  const std::vector<std::string>& port_env_names);
// The ENV `expand(..., options)` gave the definition for `port`.
dsl::Environment port_environment(const ExpandOptions& options, std::uint16_t port);

// Evaluates the definition once per port (with the port in the environment),
// each evaluation isolated and time-limited (dsl::IsolatedEvaluator), and
// validates the set as a whole (see validate_fleet).
std::vector<InstanceSpec> expand(const std::string& definition_path, const std::vector<std::uint16_t>& ports,
                                 const ExpandOptions& options);

HostIds read_host_ids(const std::string& etc_dir = "/etc");

// Instance names valid (haco::check_name's rule); names, ports and rootfs
// paths unique; uid and gid ranges pairwise disjoint,
// clear of the host's ids, inside 32 bits and never covering 65535 or
// 4294967295. Throws haco::Error listing every conflict.
void validate_fleet(const std::vector<InstanceSpec>& instances, const HostIds& host, bool allow_shared_rootfs);

// Instances without a user namespace: their root is the host's root.
std::vector<std::string> instances_running_as_host_root(const std::vector<InstanceSpec>& instances);

// The default fleet name for a definition: its file name without ".haco".
std::string default_fleet_name(const std::string& definition_path);

}  // namespace haco::fleet
