// The registry of what every fleet holds on the host: instance names, ports,
// host uid and gid ranges and rootfs trees. Each fleet's claims are a file in
// its state directory (claims.json, written atomically); one lock in the
// state root (registry.lock) serialises "check against the others, then
// claim", so that two `up`s started at the same moment cannot both take the
// same ids, port, name or tree. `up` claims before it creates anything and
// `down` drops the claims last, with the fleet's state.
//
// The registry is the state root's (--root, default /run/haco-fleet): fleets
// kept under another state root are not seen.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "haco/spec.hpp"
#include "haco/state.hpp"
#include "haco/unique_fd.hpp"

namespace haco::registry {

inline constexpr int kClaimsSchemaVersion = 1;

// What one instance holds. `rootfs` is resolved (symlinks followed as far as
// the path exists), so two spellings of one tree are one tree.
struct InstanceClaim {
  std::string instance;
  std::uint16_t port = 0;
  std::vector<IdMapping> uid_map;
  std::vector<IdMapping> gid_map;
  std::string rootfs;
};

struct FleetClaims {
  std::string fleet;
  std::vector<InstanceClaim> instances;
};

InstanceClaim claim_of(const InstanceSpec& instance);

// The claims of every fleet of the state root but `fleet`. A fleet whose
// claims cannot be read (a corrupt file) is left out and named in
// `unreadable`, one line each: it must not stop the other fleets. A fleet
// without a claims file (recorded by an older haco-fleet) is read from its
// fleet.json. Claims left by an `up` that died before its fleet had any state
// (no fleet.json, fleet lock free) are stale: dropped.
struct OtherFleets {
  std::vector<FleetClaims> fleets;
  std::vector<std::string> unreadable;
};
OtherFleets read_other_fleets(const std::string& state_root, const std::string& fleet);

// Every clash between `mine` and the other fleets' claims, one line each,
// naming the instance and fleet that holds it: the same instance name, the
// same port, the same rootfs tree, overlapping uid or gid ranges.
std::vector<std::string> find_clashes(const std::vector<InstanceClaim>& mine, const OtherFleets& others);

// Throws InputError listing the clashes (at most 25 lines, then a count).
void throw_if_clashes(const std::string& fleet, const std::vector<std::string>& clashes);

// The state root's registry lock (exclusive flock, blocking), held for the
// object's life.
class RegistryLock {
 public:
  static RegistryLock acquire(const std::string& state_root);
  RegistryLock(RegistryLock&&) = default;
  RegistryLock& operator=(RegistryLock&&) = default;

 private:
  explicit RegistryLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Under the registry lock: checks `claims` against every other fleet
// (InputError naming the other fleet on a clash; the unreadable fleets are
// reported on stderr) and records them as the fleet's claims, replacing what
// it held. Nothing is created before this returns.
void claim(const state::FleetPaths& paths, const FleetClaims& claims);

// Drops the fleet's claims (no error when it has none).
void release(const state::FleetPaths& paths);

// Drops the claims of these instances of the fleet (scale down), under the
// registry lock; their names, ports, ids and trees are free for others.
void release_instances(const state::FleetPaths& paths, const std::set<std::string>& instances);

// The fleet's own claims file; nullopt when it has none.
std::optional<FleetClaims> load_claims(const state::FleetPaths& paths);

}  // namespace haco::registry
