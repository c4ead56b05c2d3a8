// The registry of names, ports, id ranges and rootfs trees held by fleets.
#include "haco/registry.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/names.hpp"

namespace haco::registry {
namespace {

using nlohmann::json;
constexpr std::size_t kMaxListedClashes = 25;

json id_map_json(const std::vector<IdMapping>& maps) {
  json out = json::array();
  for (const auto& m : maps) out.push_back({m.inside, m.outside, m.count});
  return out;
}

std::vector<IdMapping> id_map_from_json(const json& j) {
  std::vector<IdMapping> out;
  for (const auto& m : j.get<std::vector<std::array<std::uint32_t, 3>>>()) out.push_back({m[0], m[1], m[2]});
  return out;
}

json to_json(const FleetClaims& claims) {
  json instances = json::array();
  for (const auto& c : claims.instances)
    instances.push_back({{"instance", c.instance},
                         {"port", c.port},
                         {"uid_map", id_map_json(c.uid_map)},
                         {"gid_map", id_map_json(c.gid_map)},
                         {"rootfs", c.rootfs}});
  return {{"schema", kClaimsSchemaVersion}, {"fleet", claims.fleet}, {"instances", instances}};
}

FleetClaims claims_from_json(const json& j) {
  try {
    if (j.at("schema").get<int>() != kClaimsSchemaVersion)
      throw Error("schema " + std::to_string(j.at("schema").get<int>()) + " is not the one this haco-fleet reads");
    FleetClaims claims;
    claims.fleet = j.at("fleet").get<std::string>();
    for (const auto& c : j.at("instances"))
      claims.instances.push_back({c.at("instance").get<std::string>(), c.at("port").get<std::uint16_t>(),
                                  id_map_from_json(c.at("uid_map")), id_map_from_json(c.at("gid_map")),
                                  c.at("rootfs").get<std::string>()});
    return claims;
  } catch (const json::exception& e) {
    throw Error(std::string("not a claims file: ") + e.what());
  }
}

std::optional<FleetClaims> read_claims_file(const std::string& path) {
  auto j = state::read_json_file(path);
  if (!j) return std::nullopt;
  return with_context("reading " + path, [&] { return claims_from_json(*j); });
}

// An `up` that died before its supervisor recorded any state: no fleet.json,
// and nobody holds the fleet's lock (an `up` in progress would).
bool is_stale(const state::FleetPaths& paths) {
  if (std::filesystem::exists(paths.state_file())) return false;
  UniqueFd fd(::open(paths.lock_file().c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return errno == ENOENT;
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return false;
  // Checked again under its lock: its `up` may have just written it.
  return !std::filesystem::exists(paths.state_file());
}

// Fleets that have a claims file or a state file under the state root.
std::vector<std::string> fleet_directories(const std::string& state_root) {
  std::vector<std::string> fleets;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_root, ec)) {
    const std::string name = entry.path().filename();
    if (!entry.is_directory() || !is_valid_name(name)) continue;
    if (std::filesystem::exists(entry.path() / "claims.json") || std::filesystem::exists(entry.path() / "fleet.json"))
      fleets.push_back(name);
  }
  std::sort(fleets.begin(), fleets.end());
  return fleets;
}

FleetClaims claims_from_state(const state::FleetState& fleet) {
  FleetClaims claims;
  claims.fleet = fleet.fleet;
  for (const auto& r : fleet.instances) claims.instances.push_back(claim_of(r.spec));
  return claims;
}

std::string range_text(const IdMapping& m) {
  return fmt::format("{}-{}", m.outside, std::uint64_t(m.outside) + m.count - 1);
}

struct HeldRange {
  std::uint64_t first;
  std::uint64_t last;  // inclusive
  const InstanceClaim* holder;
  const std::string* fleet;
};

std::vector<HeldRange> ranges_of(const OtherFleets& others, bool uids) {
  std::vector<HeldRange> ranges;
  for (const auto& f : others.fleets)
    for (const auto& c : f.instances)
      for (const auto& m : uids ? c.uid_map : c.gid_map)
        if (m.count > 0) ranges.push_back({m.outside, std::uint64_t(m.outside) + m.count - 1, &c, &f.fleet});
  std::sort(ranges.begin(), ranges.end(), [](const HeldRange& a, const HeldRange& b) { return a.first < b.first; });
  return ranges;
}

std::string holder_text(const InstanceClaim& c, const std::string& fleet) {
  return fmt::format("instance '{}' of fleet {}", c.instance, fleet);
}

void add_range_clashes(const InstanceClaim& mine, bool uids, const std::vector<HeldRange>& held,
                       std::vector<std::string>& clashes) {
  const char* kind = uids ? "uid" : "gid";
  for (const auto& m : uids ? mine.uid_map : mine.gid_map) {
    if (m.count == 0) continue;
    const std::uint64_t first = m.outside, last = std::uint64_t(m.outside) + m.count - 1;
    // The held ranges are sorted by start; a range starting after `last`
    // cannot overlap, and one ending before `first` does not.
    auto end = std::upper_bound(held.begin(), held.end(), last,
                                [](std::uint64_t value, const HeldRange& r) { return value < r.first; });
    for (auto it = held.begin(); it != end; ++it)
      if (it->last >= first)
        clashes.push_back(fmt::format("{} range {} of '{}' (port {}) overlaps {}-{}, held by {}", kind,
                                      range_text(m), mine.instance, mine.port, it->first, it->last,
                                      holder_text(*it->holder, *it->fleet)));
  }
}

}  // namespace

InstanceClaim claim_of(const InstanceSpec& instance) {
  std::error_code ec;
  auto resolved = std::filesystem::weakly_canonical(instance.container.rootfs, ec);
  return {instance.container.name, instance.port, instance.container.uid_map, instance.container.gid_map,
          ec ? instance.container.rootfs : resolved.string()};
}

OtherFleets read_other_fleets(const std::string& state_root, const std::string& fleet) {
  OtherFleets out;
  for (const auto& name : fleet_directories(state_root)) {
    if (name == fleet) continue;
    const state::FleetPaths paths(state_root, "", name);
    try {
      if (auto claims = read_claims_file(paths.claims_file())) {
        if (is_stale(paths)) {
          std::error_code ec;
          std::filesystem::remove(paths.claims_file(), ec);
          continue;
        }
        claims->fleet = name;
        out.fleets.push_back(std::move(*claims));
      } else if (auto recorded = state::load_state(paths)) {
        out.fleets.push_back(claims_from_state(*recorded));
        out.fleets.back().fleet = name;
      }
    } catch (const Error& e) {
      out.unreadable.push_back(fmt::format("fleet '{}': {}", name, e.what()));
    }
  }
  return out;
}

std::vector<std::string> find_clashes(const std::vector<InstanceClaim>& mine, const OtherFleets& others) {
  std::map<std::string, std::pair<const InstanceClaim*, const std::string*>> names, rootfs;
  std::map<std::uint16_t, std::pair<const InstanceClaim*, const std::string*>> ports;
  for (const auto& f : others.fleets)
    for (const auto& c : f.instances) {
      names.emplace(c.instance, std::pair{&c, &f.fleet});
      ports.emplace(c.port, std::pair{&c, &f.fleet});
      if (!c.rootfs.empty()) rootfs.emplace(c.rootfs, std::pair{&c, &f.fleet});
    }
  const auto held_uids = ranges_of(others, true);
  const auto held_gids = ranges_of(others, false);
  std::vector<std::string> clashes;
  for (const auto& c : mine) {
    if (auto it = names.find(c.instance); it != names.end())
      clashes.push_back(fmt::format("the instance name '{}' (port {}) is taken by {}", c.instance, c.port,
                                    holder_text(*it->second.first, *it->second.second)));
    if (auto it = ports.find(c.port); it != ports.end())
      clashes.push_back(fmt::format("port {} of '{}' is taken by {}", c.port, c.instance,
                                    holder_text(*it->second.first, *it->second.second)));
    if (auto it = rootfs.find(c.rootfs); it != rootfs.end())
      clashes.push_back(fmt::format("the rootfs {} of '{}' (port {}) is the tree of {}", c.rootfs, c.instance,
                                    c.port, holder_text(*it->second.first, *it->second.second)));
    add_range_clashes(c, true, held_uids, clashes);
    add_range_clashes(c, false, held_gids, clashes);
  }
  return clashes;
}

void throw_if_clashes(const std::string& fleet, const std::vector<std::string>& clashes) {
  if (clashes.empty()) return;
  std::string message = fmt::format("fleet '{}' would take what another fleet holds ({} clash{}; nothing was started):",
                                    fleet, clashes.size(), clashes.size() == 1 ? "" : "es");
  for (std::size_t i = 0; i < clashes.size() && i < kMaxListedClashes; ++i) message += "\n  - " + clashes[i];
  if (clashes.size() > kMaxListedClashes)
    message += fmt::format("\n  - ... and {} more", clashes.size() - kMaxListedClashes);
  throw InputError(message);
}

RegistryLock RegistryLock::acquire(const std::string& state_root) {
  layout::make_private_directory(state_root);
  const std::string path = state_root + "/registry.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  check_sys(fd.get(), "open", path);
  while (::flock(fd.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw Error::from_errno("flock", path, errno);
  return RegistryLock(std::move(fd));
}

void claim(const state::FleetPaths& paths, const FleetClaims& claims) {
  auto lock = RegistryLock::acquire(paths.state_root);
  auto others = read_other_fleets(paths.state_root, paths.fleet);
  for (const auto& line : others.unreadable)
    std::fprintf(stderr, "haco-fleet: warning: %s; what that fleet holds is not checked\n", line.c_str());
  throw_if_clashes(paths.fleet, find_clashes(claims.instances, others));
  paths.make_directories();
  with_context("recording the claims of fleet '" + paths.fleet + "'",
               [&] { write_file_atomically(paths.claims_file(), to_json(claims).dump(1) + "\n", 0600); });
}

void release(const state::FleetPaths& paths) {
  if (::unlink(paths.claims_file().c_str()) != 0 && errno != ENOENT)
    throw Error::from_errno("unlink", paths.claims_file(), errno);
}

void release_instances(const state::FleetPaths& paths, const std::set<std::string>& instances) {
  if (instances.empty()) return;
  auto lock = RegistryLock::acquire(paths.state_root);
  auto claims = read_claims_file(paths.claims_file());
  if (!claims) return;
  std::erase_if(claims->instances, [&](const InstanceClaim& c) { return instances.count(c.instance) > 0; });
  with_context("recording the claims of fleet '" + paths.fleet + "'",
               [&] { write_file_atomically(paths.claims_file(), to_json(*claims).dump(1) + "\n", 0600); });
}

std::optional<FleetClaims> load_claims(const state::FleetPaths& paths) {
  return read_claims_file(paths.claims_file());
}

}  // namespace haco::registry
