#include "runtime/cgroup_discovery.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "haco/error.hpp"
#include "haco/mountinfo.hpp"
#include "runtime/file_io.hpp"

namespace haco::cgroups {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

struct CgroupMount {
  std::string root;        // the hierarchy path mounted there
  std::string mount_point;
  std::vector<std::string> options;  // super options: "rw", "cpu", "name=systemd"...
  bool v2 = false;
};

std::vector<CgroupMount> read_cgroup_mounts() {
  std::vector<CgroupMount> mounts;
  for (const MountInfo& info : read_mountinfo()) {
    if (info.fstype != "cgroup2" && info.fstype != "cgroup") continue;
    mounts.push_back({info.root, info.mount_point, split(info.super_options, ','), info.fstype == "cgroup2"});
  }
  return mounts;
}

// /proc/self/cgroup: "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
std::map<std::string, std::string> read_own_cgroups() {
  std::ifstream in("/proc/self/cgroup");
  if (!in) throw Error::from_errno("open", "/proc/self/cgroup", errno);
  std::map<std::string, std::string> own;
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    own[controllers] = line.substr(second + 1);
  }
  return own;
}

std::string join_dir(const CgroupMount& m, const std::string& own_path) {
  // The mount shows `root` of the hierarchy; our path is relative to the
  // hierarchy's top, so strip the mounted root.
  std::string rel = own_path;
  if (m.root != "/" && rel.rfind(m.root, 0) == 0) rel = rel.substr(m.root.size());
  std::string dir = m.mount_point;
  if (!rel.empty() && rel != "/") dir += rel;
  return dir;
}

// The first mount of the hierarchy whose super options name every one of
// `controllers` (a hierarchy mounted twice keeps its first mount point).
const CgroupMount* mount_of(const std::vector<CgroupMount>& mounts, const std::vector<std::string>& controllers,
                            bool v2) {
  for (const auto& m : mounts) {
    if (m.v2 != v2) continue;
    bool all = std::all_of(controllers.begin(), controllers.end(), [&](const std::string& c) {
      return std::find(m.options.begin(), m.options.end(), c) != m.options.end();
    });
    if (all) return &m;
  }
  return nullptr;
}

Hierarchies discover() {
  Hierarchies h;
  auto mounts = read_cgroup_mounts();
  for (const auto& [joined, path] : read_own_cgroups()) {
    if (joined.empty()) {
      const CgroupMount* m = mount_of(mounts, {}, true);
      if (!m) continue;
      Hierarchy v2{{}, join_dir(*m, path)};
      std::istringstream words(read_text_file(v2.own_dir + "/cgroup.controllers"));
      for (std::string c; words >> c;) v2.controllers.push_back(c);
      h.v2 = std::move(v2);
      continue;
    }
    auto controllers = split(joined, ',');
    if (const CgroupMount* m = mount_of(mounts, controllers, false))
      h.v1.push_back({controllers, join_dir(*m, path)});
  }
  return h;
}

}  // namespace

bool Hierarchy::has(std::string_view controller) const {
  return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

const Hierarchy* Hierarchies::v1_for(std::string_view controller) const {
  for (const auto& h : v1)
    if (h.has(controller)) return &h;
  return nullptr;
}

const Hierarchies& discover_hierarchies() {
  static const Hierarchies hierarchies = with_context("discovering cgroup hierarchies", discover);
  return hierarchies;
}

}  // namespace haco::cgroups
