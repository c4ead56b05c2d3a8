#include "haco/ops_images.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "haco/error.hpp"
#include "haco/kept_trees.hpp"
#include "haco/layout.hpp"
#include "haco/rootfs.hpp"
#include "haco/state.hpp"
#include "haco/unique_fd.hpp"

namespace haco::ops {
namespace {

std::vector<std::string> directory_names(const std::string& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (!d) {
    if (errno == ENOENT) return names;
    throw Error::from_errno("opendir", dir, errno);
  }
  while (dirent* e = readdir(d.get())) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool is_hex_digest(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::uint64_t tree_bytes(const std::string& path) {
  static thread_local std::uint64_t total;
  total = 0;
  nftw(
      path.c_str(),
      [](const char*, const struct stat* st, int, FTW*) {
        total += static_cast<std::uint64_t>(st->st_blocks) * 512;
        return 0;
      },
      64, FTW_PHYS | FTW_MOUNT);
  return total;
}

// "kind:hex" of each cache entry an instance's overlay is recorded over.
std::map<std::string, std::vector<std::string>> entry_users(const layout::DataRoot& root) {
  std::map<std::string, std::vector<std::string>> users;
  for (const std::string& instance : directory_names(root.instances())) {
    std::string record;
    try {
      record = root.instance_image_digest(instance);
    } catch (const Error&) {
      continue;  // not an instance's name: not ours
    }
    std::ifstream in(record);
    std::string line;
    while (in >> line) {
      const bool layer = line.rfind("sha256:", 0) == 0;
      users[(layer ? "layer:" : "image:") + (layer ? line.substr(7) : line)].push_back(instance);
    }
  }
  return users;
}

// Instance name -> "FLEET" from the fleets' states, "FLEET (kept)" from
// their kept records.
std::map<std::string, std::string> instance_fleets(const std::string& state_root, const std::string& data_root) {
  std::map<std::string, std::string> fleets;
  for (const std::string& fleet : supervisor::fleets_with_kept_trees(data_root))
    for (const auto& kept : supervisor::kept_instances({state_root, data_root, fleet}))
      fleets[kept.instance] = fleet + " (kept)";
  for (const std::string& fleet : state::list_fleets(state_root)) {
    std::optional<state::FleetState> s;
    try {
      s = state::load_state({state_root, data_root, fleet});
    } catch (const Error&) {
      continue;  // unreadable state: its instances show by name
    }
    if (!s) continue;
    for (const auto& r : s->instances) fleets[r.name()] = fleet;
  }
  return fleets;
}

void add_entries(std::vector<CacheEntry>& out, const std::string& kind, const std::string& dir,
                 const std::map<std::string, std::vector<std::string>>& users,
                 const std::map<std::string, std::string>& fleets) {
  for (const std::string& name : directory_names(dir)) {
    if (!is_hex_digest(name) || !is_directory(dir + "/" + name)) continue;
    CacheEntry e;
    e.kind = kind;
    e.digest = name;
    e.tree = dir + "/" + name;
    e.bytes = tree_bytes(e.tree);
    std::ifstream in(e.tree + ".ids");
    nlohmann::json ids = nlohmann::json::parse(in, nullptr, false);
    e.complete = !ids.is_discarded() && ids.is_object() && ids.contains("uids");
    if (e.complete) e.source = ids.value(kind == "image" ? "archive" : "image", "");
    if (auto u = users.find(kind + ":" + name); u != users.end()) e.instances = u->second;
    std::set<std::string> names;
    for (const auto& instance : e.instances) {
      auto f = fleets.find(instance);
      names.insert(f != fleets.end() ? f->second : "instance " + instance);
    }
    e.fleets.assign(names.begin(), names.end());
    out.push_back(std::move(e));
  }
}

}  // namespace

std::vector<CacheEntry> list_image_cache(const std::string& state_root, const std::string& data_root) {
  const layout::DataRoot root(data_root);
  const auto users = entry_users(root);
  const auto fleets = instance_fleets(state_root, data_root);
  std::vector<CacheEntry> out;
  add_entries(out, "image", root.images(), users, fleets);
  add_entries(out, "layer", root.layers(), users, fleets);
  return out;
}

PruneResult prune_image_cache(const std::string& state_root, const std::string& data_root, bool dry_run) {
  const layout::DataRoot root(data_root);
  // No fleet is brought up or down meanwhile: their locks, all held.
  std::vector<state::FleetLock> fleet_locks;
  for (const std::string& fleet : state::list_fleets(state_root)) {
    auto lock = state::FleetLock::try_acquire({state_root, data_root, fleet}, "images prune");
    if (!lock)
      throw InputError(fmt::format("fleet {} is being brought up or taken down: nothing pruned (run images prune "
                                   "again once it is done)",
                                   fleet));
    fleet_locks.push_back(std::move(*lock));
  }
  PruneResult result;
  for (CacheEntry& e : list_image_cache(state_root, data_root)) {
    if (!e.instances.empty()) {
      ++result.kept;
      continue;
    }
    const std::string lock_path = e.tree + ".lock";
    UniqueFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock) throw Error::from_errno("open", lock_path, errno);
    // Held shared by an `up` between finding the entry and recording its
    // overlays: in use.
    if (flock(lock.get(), LOCK_EX | LOCK_NB) < 0) {
      if (errno != EWOULDBLOCK) throw Error::from_errno("flock", lock_path, errno);
      ++result.kept;
      continue;
    }
    // Recorded by an instance since the listing: in use.
    if (entry_users(root).count(e.kind + ":" + e.digest)) {
      ++result.kept;
      continue;
    }
    if (!dry_run) {
      // The completion marker first: a removal cut short leaves an entry
      // that the next fill makes again. The lock file stays (a waiter may
      // hold it open).
      if (unlink((e.tree + ".ids").c_str()) < 0 && errno != ENOENT)
        throw Error::from_errno("unlink", e.tree + ".ids", errno);
      rootfs::remove_tree(e.tree);
    }
    result.bytes += e.bytes;
    result.removed.push_back(std::move(e));
  }
  // Blob copies of a docker archive left by a run that died (<pid>-<n>).
  for (const std::string& name : directory_names(root.staging())) {
    const pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)) continue;
    if (!dry_run) rootfs::remove_tree(root.staging() + "/" + name);
    ++result.staging_removed;
  }
  return result;
}

}  // namespace haco::ops
