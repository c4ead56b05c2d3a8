// The schema numbers of the JSON documents the command line prints, as
// `expand --json` carries haco::kExpandSchemaVersion: a number changes only
// when a field changes meaning or disappears; new fields may be added.
#pragma once

namespace haco::cli {

// ps --json: {"schema", "fleets": [...]}.
inline constexpr int kPsSchemaVersion = 1;
// up --json: {"schema", "fleet", "started", "failed", "atomic_rollback", "latency"}.
inline constexpr int kUpSchemaVersion = 1;
// inspect --json: {"schema", "fleet", "instance", "spec", "init", "pids", "namespaces", "cgroup", "mounts", "logs",
// "recent_exits", ...} (docs/inspect.md).
inline constexpr int kInspectSchemaVersion = 1;
// reload --json: {"schema", "fleet", "dry_run", "instances": [...]} (docs/inspect.md).
inline constexpr int kReloadSchemaVersion = 1;

}  // namespace haco::cli
