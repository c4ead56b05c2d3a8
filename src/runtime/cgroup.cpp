// Chooses the backend: v2 when the unified tree offers every controller the
// settings need, v1 otherwise (with the unified tree, if mounted, for
// membership and cgroup.kill).
#include "haco/cgroup.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/names.hpp"
#include "runtime/cgroup_backends.hpp"
#include "runtime/cgroup_keys.hpp"

namespace haco::cgroups {
namespace {

bool v2_serves(const Hierarchies& h, const std::vector<CgroupSetting>& v2_settings) {
  if (!h.v2) return false;
  return std::all_of(v2_settings.begin(), v2_settings.end(),
                     [&](const CgroupSetting& s) { return h.v2->has(controller_of(s.key)); });
}

// The child directories of `dir` whose names are valid fleet or instance
// names (`.supervisor` and the kernel's files are not).
void add_child_names(const std::string& dir, std::set<std::string>& names) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_directory(ec) && is_valid_name(entry.path().filename().string()))
      names.insert(entry.path().filename().string());
}

bool has_child_cgroup(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_directory(ec)) return true;
  return false;
}

// rmdir of a cgroup directory that has no child left. EBUSY right after its
// last process or child went is the kernel still releasing them: retried
// for a while. A child cgroup (another fleet's: cgroupfs says EBUSY for it
// too) keeps it at once.
void remove_if_empty(const std::string& dir) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (::rmdir(dir.c_str()) != 0) {
    if (errno == ENOENT || errno == ENOTEMPTY) return;
    if (errno != EBUSY) throw Error::from_errno("rmdir", dir, errno);
    if (has_child_cgroup(dir)) return;
    if (std::chrono::steady_clock::now() >= deadline) return;  // still in use: kept
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

std::unique_ptr<InstanceCgroup> InstanceCgroup::create(const FleetCgroup& fleet, const std::string& instance,
                                                       const std::vector<CgroupSetting>& settings) {
  return with_context(fmt::format("creating the cgroup of {}", instance), [&]() -> std::unique_ptr<InstanceCgroup> {
    if (fleet.layout != Layout::v1_hybrid)
      return V2Cgroup::create_leaf(fleet.instances_dir(), instance, translate_to_v2(settings));
    const Hierarchies& h = discover_hierarchies();
    auto v2_settings = translate_to_v2(settings);
    if (v2_serves(h, v2_settings) && (h.v1.empty() || !v2_settings.empty()))
      return V2Cgroup::create(*h.v2, fleet.fleet, instance, v2_settings);
    if (h.v1.empty()) {
      std::string missing;
      for (const auto& s : v2_settings)
        if (!h.v2 || !h.v2->has(controller_of(s.key))) missing.append(" ").append(controller_of(s.key));
      throw Error(fmt::format("no cgroup hierarchy offers the controllers:{}", missing));
    }
    return V1Cgroup::create(h, fleet.fleet, instance, translate_to_v1(settings), true);
  });
}

std::unique_ptr<InstanceCgroup> InstanceCgroup::open(const FleetCgroup& fleet, const std::string& instance) {
  if (fleet.layout != Layout::v1_hybrid) return V2Cgroup::open_leaf(fleet.instances_dir(), instance);
  const Hierarchies& h = discover_hierarchies();
  if (auto v1 = V1Cgroup::open(h, fleet.fleet, instance)) return v1;
  if (h.v2) return V2Cgroup::open(*h.v2, fleet.fleet, instance);
  return nullptr;
}

std::vector<std::string> instance_cgroup_names(const FleetCgroup& fleet) {
  std::set<std::string> names;
  auto add_children = [&](const std::string& dir) { add_child_names(dir, names); };
  if (fleet.layout != Layout::v1_hybrid) {
    if (!fleet.dir.empty()) add_children(fleet.instances_dir());
  } else {
    const Hierarchies& h = discover_hierarchies();
    for (const auto& v1 : h.v1) add_children(fleet_dir(v1, fleet.fleet));
    if (h.v2) add_children(fleet_dir(*h.v2, fleet.fleet));
  }
  return {names.begin(), names.end()};
}

std::string supervisor_cgroup_dir(const FleetCgroup& fleet) {
  if (fleet.layout != Layout::v1_hybrid) return fleet.dir.empty() ? std::string() : fleet.supervisor_dir();
  const Hierarchies& h = discover_hierarchies();
  const Hierarchy* hier = h.v2 ? &*h.v2 : h.v1_for("pids");
  if (!hier) return {};
  return fleet_dir(*hier, fleet.fleet) + "/.supervisor";
}

std::vector<std::string> fleets_with_cgroups() {
  std::set<std::string> names;
  auto add_children = [&](const std::string& dir) { add_child_names(dir, names); };
  switch (detect_layout()) {
    case Layout::v1_hybrid: {
      const Hierarchies& h = discover_hierarchies();
      for (const auto& v1 : h.v1) add_children(v1.own_dir + "/haco-fleet");
      if (h.v2) add_children(h.v2->own_dir + "/haco-fleet");
      break;
    }
    case Layout::v2_root:
      add_children("/sys/fs/cgroup/haco-fleet");
      break;
    case Layout::v2_systemd:
      break;
  }
  return {names.begin(), names.end()};
}

FleetCgroup unrecorded_fleet_cgroup(const std::string& fleet) {
  FleetCgroup where{fleet, detect_layout(), "", ""};
  if (where.layout == Layout::v2_root) where.dir = fleet_dir_v2_root(fleet);
  return where;
}

void remove_fleet_cgroups(const FleetCgroup& fleet) {
  if (fleet.layout != Layout::v1_hybrid) {
    remove_if_empty(fleet.instances_dir());
    remove_if_empty(fleet.supervisor_dir());
    // A systemd unit's own directory goes with the unit; the engine's
    // cgroups around a fleet beside its task stay the engine's.
    if (fleet.layout == Layout::v2_root) {
      remove_if_empty(fleet.dir);
      remove_if_empty(fleet.dir.substr(0, fleet.dir.rfind('/')));
    } else if (is_beside_engine_task(fleet)) {
      remove_if_empty(fleet.dir);
    }
    return;
  }
  if (std::string supervisor = supervisor_cgroup_dir(fleet); !supervisor.empty()) remove_if_empty(supervisor);
  const Hierarchies& h = discover_hierarchies();
  std::vector<const Hierarchy*> all;
  for (const auto& v1 : h.v1) all.push_back(&v1);
  if (h.v2) all.push_back(&*h.v2);
  for (const Hierarchy* hier : all) {
    remove_if_empty(fleet_dir(*hier, fleet.fleet));
    remove_if_empty(hier->own_dir + "/haco-fleet");
  }
}

}  // namespace haco::cgroups
