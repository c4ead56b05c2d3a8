#include "cli/expand_options.hpp"

#include <cmath>
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/option_ranges.hpp"
#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/names.hpp"
#include "haco/registry.hpp"

namespace haco::cli {

void add_expand_options(CLI::App& cmd, ExpandCommandOptions& options) {
  cmd.add_option("definition", options.definition, "The haconiwa definition (.haco file)")->required();
  cmd.add_option("-p,--ports", options.ports,
                 "Ports, one instance per port: 10001-10100, or 10001,10005,10010-10020")
      ->required();
  cmd.add_option("--port-env", options.port_env_names,
                 "Another environment variable that carries the port (PORT and APACHE_PORT always do)");
  cmd.add_option("--name", options.fleet_name, "Fleet name (default: the definition's file name without .haco)")
      ->check(fleet_name_rule());
  cmd.add_flag("--allow-shared-rootfs", options.allow_shared_rootfs,
               "Accept instances that share one rootfs (as the seed's previous definition does)");
  cmd.add_option("--pids-max", options.pids_max,
                 "pids.max of each instance whose definition sets none: " + range_text(kPidsMaxRange) +
                     ", or max for no limit")
      ->check(whole_number_or_max_in(kPidsMaxRange))
      ->capture_default_str();
  cmd.add_option("--eval-timeout", options.eval_timeout_s,
                 "Seconds one port's evaluation of the definition may take, " + range_text(kEvalTimeoutRange) +
                     " (bootstrap commands are not counted)")
      ->check(seconds_in(kEvalTimeoutRange))
      ->capture_default_str();
}


ExpandedFleet expand_from_options(const ExpandCommandOptions& options) {
  // The option parser holds it to kEvalTimeoutRange.
  auto timeout = std::chrono::milliseconds(std::lround(options.eval_timeout_s * 1000));
  fleet::ExpandOptions expand;
  expand.eval_timeout = timeout;
  expand.port_env_names = options.port_env_names;
  expand.base_environment = dsl::process_environment();
  expand.allow_shared_rootfs = options.allow_shared_rootfs;
  expand.default_pids_max = options.pids_max;
  ExpandedFleet out;
  out.fleet_name = options.fleet_name.empty() ? fleet::default_fleet_name(options.definition) : options.fleet_name;
  // Before anything is evaluated or read: the name becomes paths and cgroups.
  check_name(options.fleet_name.empty() ? "fleet name (the definition's file name; --name gives another)"
                                        : "fleet name",
             out.fleet_name);
  out.instances = fleet::expand(options.definition, fleet::parse_port_range(options.ports), expand);
  out.options = std::move(expand);
  return out;
}

std::vector<registry::InstanceClaim> claims_of(const std::vector<InstanceSpec>& instances) {
  std::vector<registry::InstanceClaim> claims;
  claims.reserve(instances.size());
  for (const auto& i : instances) claims.push_back(registry::claim_of(i));
  return claims;
}

void check_against_other_fleets(const std::string& state_root, const ExpandedFleet& fleet, LogLevel level) {
  auto others = registry::read_other_fleets(state_root, fleet.fleet_name);
  if (shows(level, LogLevel::warn)) {
    for (const auto& line : others.unreadable)
      std::fprintf(stderr, "haco-fleet: warning: %s; what that fleet holds is not checked\n", line.c_str());
  }
  registry::throw_if_clashes(fleet.fleet_name, registry::find_clashes(claims_of(fleet.instances), others));
}

}  // namespace haco::cli
