// `reload`: evaluates a fleet's recorded definition again for its ports,
// as `up` expanded it, and compares each instance with its record. Changed
// or added cgroup limits are applied to the running instances without a
// restart (through the supervisor, which writes them into their cgroups,
// reads them back and records them); every other change is listed as
// needing a restart and is not applied (haconiwa's `support_reload :cgroup`).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "haco/dsl.hpp"
#include "haco/fleet.hpp"
#include "haco/ops.hpp"
#include "haco/spec.hpp"

namespace haco::ops {

// One cgroup limit that differs: `before` nullopt when the record had none.
struct LimitChange {
  std::string key;
  std::optional<std::string> before;
  std::string after;
  bool operator==(const LimitChange&) const = default;
};

// How an instance's definition changed since it started.
struct SpecDiff {
  std::vector<LimitChange> limits;         // changed or added: can be applied live
  std::vector<std::string> needs_restart;  // every other change, one phrase each ("init command")
  // The record's settings with the changes applied (a removed key stays:
  // the kernel keeps it until the instance starts again).
  std::vector<CgroupSetting> cgroup;
  bool unchanged() const { return limits.empty() && needs_restart.empty(); }
};

// The difference between what an instance was started with and what its
// definition gives now (the index and the file's spelling aside).
SpecDiff diff_specs(const InstanceSpec& recorded, const InstanceSpec& now);

// What became of an instance's changed limits.
enum class LimitsOutcome {
  none,         // no limit changed
  applied,      // in its cgroup and its record
  would_apply,  // --dry-run
  not_running,  // --dry-run of an instance that does not run: its next start would get them
  recorded,     // it does not run: written to its record, its next start (or restart) gets them
  failed,       // the supervisor could not apply them: `error`
};
std::string_view limits_outcome_name(LimitsOutcome outcome);

struct ReloadedInstance {
  std::string instance;
  std::uint16_t port = 0;
  std::string state;  // as recorded
  SpecDiff diff;
  LimitsOutcome limits = LimitsOutcome::none;
  std::string error;
};

// Evaluates `definition` for `ports` as fleet::expand does (the real one:
// fleet::expand; tests give their own).
using Expander = std::function<std::vector<InstanceSpec>(const std::string& definition,
                                                         const std::vector<std::uint16_t>& ports,
                                                         const fleet::ExpandOptions& options)>;

struct ReloadRequest {
  std::string state_root;
  std::string data_root;
  std::string fleet;  // --name; empty: the only fleet
  bool dry_run = false;
  // The caller's environment, as `up` took its own (fleet::ExpandOptions).
  dsl::Environment base_environment;
  std::chrono::milliseconds eval_timeout = dsl::kDefaultEvalTimeout;
};

struct ReloadResult {
  std::string fleet;
  std::string definition;
  std::vector<ReloadedInstance> instances;  // in the fleet's order
  std::size_t failed() const;
};

// Reloads the fleet under its lock. Throws haco::InputError when the fleet
// or its definition cannot be found or no longer evaluates (nothing
// changed), haco::Error when its supervisor does not answer (nor does a
// --dry-run need it) or another `up`/`down` holds its lock.
ReloadResult reload(const ReloadRequest& request, SupervisorClient& supervisor, const Expander& expand, Sink& sink);

}  // namespace haco::ops
