// What a `down` without --purge leaves on disk of a fleet's instances (their
// rootfs trees, overlay upper layers, logs), recorded in the data root so
// that a later `down --name FLEET --purge` finds it after the fleet's state
// is gone. Written by `down` and `down --ports`; read and removed by
// `down --purge`. One file per fleet: <data root>/kept/<fleet>.json.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "haco/state.hpp"

namespace haco::supervisor {

inline constexpr int kKeptSchemaVersion = 1;

// One instance whose trees were kept: its name and the rootfs path it had
// (its upper layer is found in the data root by name).
struct KeptInstance {
  std::string instance;
  std::string rootfs;
  bool operator==(const KeptInstance&) const = default;
};

// Adds `records` to the fleet's kept record (one entry per name, the last
// rootfs winning). Throws haco::Error naming the file.
void remember_kept(const state::FleetPaths& paths, const std::vector<state::InstanceRecord>& records);

// The fleets of `data_root` that have a kept record.
std::vector<std::string> fleets_with_kept_trees(const std::string& data_root);

// The fleet's kept record; empty when it has none.
std::vector<KeptInstance> kept_instances(const state::FleetPaths& paths);

// Removes the instance's log files: <instance>.log and what sits beside it
// under that name (the rotated generation, its index).
void remove_instance_logs(const state::FleetPaths& paths, const std::string& instance);

struct KeptPurge {
  std::size_t removed = 0;            // instances whose trees or logs were removed
  std::vector<std::string> skipped;   // one line each: held by another fleet, or in use
};

// Removes what the kept record lists: each instance's rootfs tree and upper
// layer (rootfs::find_unrecorded_rootfs), and its logs; an instance whose
// name or tree another fleet of the state root now claims, or whose tree is
// a mount point (running), is skipped and said. The record goes once nothing
// was skipped. Throws listing what could not be removed.
KeptPurge purge_kept(const state::FleetPaths& paths, const std::function<void(std::string_view)>& progress = {});

}  // namespace haco::supervisor
