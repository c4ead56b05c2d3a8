// Where the cgroup hierarchies are mounted and where the calling process sits
// in each, read from /proc/self/mountinfo and /proc/self/cgroup.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace haco::cgroups {

struct Hierarchy {
  std::vector<std::string> controllers;  // v1: "cpu", "name=systemd"...; v2: from cgroup.controllers
  std::string own_dir;                   // the caller's cgroup directory in this hierarchy
  bool has(std::string_view controller) const;
};

struct Hierarchies {
  std::vector<Hierarchy> v1;
  std::optional<Hierarchy> v2;
  // The v1 hierarchy holding `controller`, or nullptr.
  const Hierarchy* v1_for(std::string_view controller) const;
};

// Reads the mount table and the caller's cgroups once per process (both only
// change when the caller moves itself, which this program does not do).
const Hierarchies& discover_hierarchies();

}  // namespace haco::cgroups
