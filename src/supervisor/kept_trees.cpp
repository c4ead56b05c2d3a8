// The record of what a `down` without --purge kept (haco/kept_trees.hpp).
#include "haco/kept_trees.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/names.hpp"
#include "haco/registry.hpp"
#include "haco/rootfs.hpp"

namespace haco::supervisor {
namespace {

std::string record_path(const state::FleetPaths& paths) {
  return layout::DataRoot(paths.data_root).fleet_kept_record(paths.fleet);
}

void write_record(const state::FleetPaths& paths, const std::vector<KeptInstance>& kept) {
  const std::string path = record_path(paths);
  if (kept.empty()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) throw Error::from_errno("unlink", path, ec.value());
    return;
  }
  nlohmann::json instances = nlohmann::json::array();
  for (const auto& k : kept) instances.push_back({{"instance", k.instance}, {"rootfs", k.rootfs}});
  nlohmann::json j = {{"schema", kKeptSchemaVersion}, {"fleet", paths.fleet}, {"instances", instances}};
  layout::make_private_directory(layout::DataRoot(paths.data_root).kept());
  write_file_atomically(path, j.dump(2) + "\n", 0600);
}

}  // namespace

void remove_instance_logs(const state::FleetPaths& paths, const std::string& instance) {
  const std::string prefix = instance + ".log";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(paths.log_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name == prefix || name.rfind(prefix + ".", 0) == 0) {
      std::error_code remove_ec;
      std::filesystem::remove(entry.path(), remove_ec);
      if (remove_ec) throw Error::from_errno("unlink", entry.path().string(), remove_ec.value());
    }
  }
}

std::vector<std::string> fleets_with_kept_trees(const std::string& data_root) {
  std::vector<std::string> fleets;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(layout::DataRoot(data_root).kept(), ec)) {
    const auto path = entry.path();
    if (path.extension() != ".json") continue;
    const std::string fleet = path.stem().string();
    if (is_valid_name(fleet)) fleets.push_back(fleet);
  }
  std::sort(fleets.begin(), fleets.end());
  return fleets;
}

std::vector<KeptInstance> kept_instances(const state::FleetPaths& paths) {
  auto j = state::read_json_file(record_path(paths));
  if (!j) return {};
  std::vector<KeptInstance> kept;
  try {
    if (j->at("schema").get<int>() != kKeptSchemaVersion)
      throw Error(fmt::format("{}: schema {} is not one this haco-fleet reads ({})", record_path(paths),
                              j->at("schema").get<int>(), kKeptSchemaVersion));
    for (const auto& item : j->at("instances")) {
      KeptInstance k{item.at("instance").get<std::string>(), item.at("rootfs").get<std::string>()};
      check_name("instance name", k.instance);  // it names paths
      kept.push_back(std::move(k));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(record_path(paths) + ": " + e.what());
  }
  return kept;
}

void remember_kept(const state::FleetPaths& paths, const std::vector<state::InstanceRecord>& records) {
  if (records.empty()) return;
  std::map<std::string, std::string> by_name;
  std::vector<std::string> order;
  for (const auto& k : kept_instances(paths)) {
    if (!by_name.count(k.instance)) order.push_back(k.instance);
    by_name[k.instance] = k.rootfs;
  }
  for (const auto& r : records) {
    if (!by_name.count(r.name())) order.push_back(r.name());
    by_name[r.name()] = r.rootfs ? r.rootfs->rootfs : r.spec.container.rootfs;
  }
  std::vector<KeptInstance> kept;
  for (const auto& name : order) kept.push_back({name, by_name[name]});
  write_record(paths, kept);
}

KeptPurge purge_kept(const state::FleetPaths& paths, const std::function<void(std::string_view)>& progress) {
  KeptPurge result;
  auto kept = kept_instances(paths);
  if (kept.empty()) return result;
  if (progress) progress(fmt::format("removing what an earlier down kept ({} instances)", kept.size()));

  // What other fleets hold now, and what of this fleet still runs.
  std::set<std::string> held_names, held_trees;
  for (const auto& fleet : registry::read_other_fleets(paths.state_root, paths.fleet).fleets)
    for (const auto& claim : fleet.instances) {
      held_names.insert(claim.instance);
      held_trees.insert(claim.rootfs);
    }
  std::set<std::string> running;
  if (auto own = state::load_state(paths))
    for (const auto& r : own->instances)
      if (state::is_alive(r.process)) running.insert(r.name());

  std::vector<KeptInstance> left;
  std::vector<std::string> errors;
  for (const auto& k : kept) {
    // As claims spell trees (registry::claim_of).
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(k.rootfs, ec);
    const std::string resolved = ec ? k.rootfs : canonical.string();
    if (held_names.count(k.instance) || held_trees.count(resolved)) {
      result.skipped.push_back(k.instance + ": another fleet of " + paths.state_root + " holds it now");
      left.push_back(k);
      continue;
    }
    if (running.count(k.instance)) {
      result.skipped.push_back(k.instance + ": it runs again");
      left.push_back(k);
      continue;
    }
    try {
      if (auto prepared = rootfs::find_unrecorded_rootfs(paths.data_root, k.instance, k.rootfs)) {
        rootfs::teardown(*prepared, true);
        rootfs::mark_rootfs_complete(paths.data_root, k.instance);
      }
      remove_instance_logs(paths, k.instance);
      ++result.removed;
    } catch (const Error& e) {
      errors.push_back(k.instance + ": " + e.what());
      left.push_back(k);
    }
  }
  write_record(paths, left);
  if (!errors.empty()) {
    std::string text;
    for (const auto& e : errors) text += "\n  " + e;
    throw Error("removing what an earlier down kept of fleet '" + paths.fleet + "':" + text);
  }
  return result;
}

}  // namespace haco::supervisor
