// The options shared by every command that expands a definition (`expand`,
// `up`): the definition file, the port range and how ports reach it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/log_level.hpp"
#include "haco/cgroup.hpp"
#include "haco/fleet.hpp"
#include "haco/registry.hpp"
#include "haco/spec.hpp"

namespace haco::cli {

struct ExpandCommandOptions {
  std::string definition;
  std::string ports;
  std::vector<std::string> port_env_names;
  std::string fleet_name;  // --name; default: the definition's file name without .haco
  bool allow_shared_rootfs = false;
  std::string pids_max = cgroups::kDefaultPidsMax;
  double eval_timeout_s = 5;  // --eval-timeout, seconds per port's evaluation
};

void add_expand_options(CLI::App& cmd, ExpandCommandOptions& options);

struct ExpandedFleet {
  std::string fleet_name;
  std::vector<InstanceSpec> instances;
  // What the instances were expanded with: a later evaluation of the
  // definition for one of them sees fleet::port_environment(options, port).
  fleet::ExpandOptions options;
};

// Parses the ports, evaluates the definition per port and validates the set;
// throws haco::InputError on bad input.
ExpandedFleet expand_from_options(const ExpandCommandOptions& options);

// What the instances would hold on the host (haco/registry.hpp).
std::vector<registry::InstanceClaim> claims_of(const std::vector<InstanceSpec>& instances);

// Checks the fleet against what the other fleets under `state_root` hold,
// without taking the registry lock (`expand` only looks; `up` claims under
// the lock): InputError naming the other fleet on a clash.
// A fleet whose claims cannot be read is a warning, printed when `level` shows
// warnings.
void check_against_other_fleets(const std::string& state_root, const ExpandedFleet& fleet, LogLevel level);

}  // namespace haco::cli
