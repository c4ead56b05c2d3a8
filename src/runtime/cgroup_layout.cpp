// Which cgroup layout the host has, and the fleet-level cgroups of the v2
// layouts: made once by the supervisor before any instance starts, so that
// instances never race to create or configure shared levels.
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "runtime/cgroup_backends.hpp"
#include "runtime/file_io.hpp"

namespace haco::cgroups {
namespace {

constexpr const char* kV2Mount = "/sys/fs/cgroup";
// The controllers a fleet passes down to its instances, when the host has them.
constexpr std::string_view kFleetControllers[] = {"cpu", "cpuset", "io", "memory", "pids"};

bool is_cgroup2(const char* path) {
  struct statfs fs {};
  return ::statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// "0::/system.slice/x.service" of /proc/self/cgroup, as a directory.
std::string own_v2_dir() {
  std::ifstream in("/proc/self/cgroup");
  if (!in) throw Error::from_errno("open", "/proc/self/cgroup", errno);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) {
      std::string path = line.substr(3);
      return path == "/" ? std::string(kV2Mount) : kV2Mount + path;
    }
  throw Error("/proc/self/cgroup has no cgroup v2 entry");
}

// systemd marks the cgroup of a unit with Delegate=yes with this attribute
// (trusted.* as root, user.* for a user manager).
bool is_delegated(const std::string& dir) {
  char value[8] = {};
  for (const char* name : {"trusted.delegate", "user.delegate"}) {
    ssize_t n = ::getxattr(dir.c_str(), name, value, sizeof(value) - 1);
    if (n > 0 && value[0] == '1') return true;
  }
  return false;
}

void make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw Error::from_errno("mkdir", dir, errno);
}

// Turns on, for the children of `dir`, every fleet controller `dir` has.
void enable_controllers_below(const std::string& dir) {
  auto available = words_of(read_text_file(dir + "/cgroup.controllers"));
  std::string enable;
  for (auto c : kFleetControllers)
    if (std::find(available.begin(), available.end(), c) != available.end())
      enable.append(enable.empty() ? "" : " ").append("+").append(c);
  if (enable.empty()) return;
  with_context(fmt::format("enabling {} for the cgroups below {}", enable, dir),
               [&] { write_kernel_file(dir + "/cgroup.subtree_control", enable); });
}

// Moves every process of `from` into `to` (the no-internal-process rule: a
// cgroup that passes controllers down may hold no process itself).
void move_processes(const std::string& from, const std::string& to) {
  for (int round = 0; round < 100; ++round) {
    auto pids = read_procs(from);
    if (pids.empty()) return;
    for (pid_t pid : pids) {
      try {
        write_kernel_file(to + "/cgroup.procs", std::to_string(pid));
      } catch (const Error& e) {
        if (e.sys_errno() != ESRCH) throw;
      }
    }
  }
  throw Error(fmt::format("processes keep appearing in {}; cannot move them to {}", from, to));
}

// The name of a fleet's cgroup beside an engine's task cgroup.
std::string beside_task_dir_name(const std::string& fleet) { return "haco-fleet-" + fleet; }

// The cgroups from the nearest delegated ancestor of `dir` (the cgroup a
// systemd unit with Delegate=yes hands to its engine, such as the scope of
// Slurm's step daemons) down to `dir`'s parent, top first; empty when no
// ancestor is delegated.
std::vector<std::string> delegated_ancestors_of(const std::string& dir) {
  std::vector<std::string> chain;
  std::string up = dir;
  while (up.size() > std::string_view(kV2Mount).size()) {
    up.erase(up.rfind('/'));
    if (up.size() <= std::string_view(kV2Mount).size()) break;  // never the root cgroup
    chain.push_back(up);
    if (is_delegated(up)) {
      std::reverse(chain.begin(), chain.end());
      return chain;
    }
  }
  return {};
}

// An engine passes down to its task cgroups only the controllers its own
// plugins use (Slurm 22.05: cpuset, cpu, memory), while every instance has a
// pids limit at least. Each fleet controller that the task cgroup `task`
// lacks but its nearest delegated ancestor has is enabled on every level
// from that ancestor down to the task's parent, so that the task and the
// fleet's cgroup beside it get it: that subtree is the engine's to manage,
// and the task runs in it. Controllers stay enabled there when the fleet
// leaves (other tasks of the step may use them; the engine removes its
// step's cgroups). Without a delegated ancestor nothing is changed, and an
// instance whose limits need a missing controller is refused when its
// cgroup is made.
void pass_fleet_controllers_down_to(const std::string& task) {
  auto have = words_of(read_text_file(task + "/cgroup.controllers"));
  auto chain = delegated_ancestors_of(task);
  if (chain.empty()) return;
  auto available = words_of(read_text_file(chain.front() + "/cgroup.controllers"));
  std::string enable;
  for (auto c : kFleetControllers)
    if (std::find(have.begin(), have.end(), c) == have.end() &&
        std::find(available.begin(), available.end(), c) != available.end())
      enable.append(enable.empty() ? "" : " ").append("+").append(c);
  if (enable.empty()) return;
  for (const auto& level : chain)
    with_context(fmt::format("enabling {} for the cgroups below {} (a fleet beside the task cgroup {} limits its "
                             "instances with them; they are enabled from the delegated cgroup {} down)",
                             enable, level, task, chain.front()),
                 [&] { write_kernel_file(level + "/cgroup.subtree_control", enable); });
}

// The attribute's value on `dir`; nullopt when the directory or the
// attribute is missing, or cannot be read (then the fleet counts as one
// started before the attribute existed).
std::optional<std::string> read_state_root_attribute(const std::string& dir) {
  ssize_t size = ::getxattr(dir.c_str(), kStateRootAttribute, nullptr, 0);
  if (size <= 0) return std::nullopt;
  std::string value(static_cast<std::size_t>(size), '\0');
  size = ::getxattr(dir.c_str(), kStateRootAttribute, value.data(), value.size());
  if (size <= 0) return std::nullopt;
  value.resize(static_cast<std::size_t>(size));
  return value;
}

// Marks `dir` (the fleet's cgroup) as belonging to `state_root`. Refuses a
// cgroup marked by another state root: two fleets of one name under two
// roots would share their cgroups. A cgroupfs without user.* attributes
// leaves it unmarked.
void mark_state_root(const std::string& fleet, const std::string& dir, const std::string& state_root) {
  if (state_root.empty()) return;
  const std::string identity = state_root_identity(state_root);
  if (auto marked = read_state_root_attribute(dir); marked && *marked != identity)
    throw Error(fmt::format("the cgroup {} of fleet '{}' belongs to state root {}: a fleet of that name runs (or left "
                            "its cgroups) there; take it down with `haco-fleet --root {} down --name {}` or choose "
                            "another name",
                            dir, fleet, *marked, *marked, fleet));
  if (::setxattr(dir.c_str(), kStateRootAttribute, identity.data(), identity.size(), 0) != 0 && errno != ENOTSUP &&
      errno != EOPNOTSUPP)
    throw Error::from_errno("setxattr", dir + " (" + kStateRootAttribute + ")", errno);
}

}  // namespace

std::string state_root_identity(const std::string& state_root) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(state_root, ec);
  if (ec) absolute = state_root;
  std::filesystem::path resolved = std::filesystem::weakly_canonical(absolute, ec);
  std::string text = (ec ? absolute.lexically_normal() : resolved).string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

std::string state_root_attribute_dir(const FleetCgroup& fleet) {
  if (fleet.layout != Layout::v1_hybrid) return fleet.dir;
  const std::string supervisor = supervisor_cgroup_dir(fleet);
  return supervisor.empty() ? std::string() : supervisor.substr(0, supervisor.rfind('/'));
}

std::optional<std::string> recorded_state_root(const FleetCgroup& fleet) {
  const std::string dir = state_root_attribute_dir(fleet);
  if (dir.empty()) return std::nullopt;
  return read_state_root_attribute(dir);
}

std::string_view layout_name(Layout layout) {
  switch (layout) {
    case Layout::v1_hybrid: return "v1_hybrid";
    case Layout::v2_systemd: return "v2_systemd";
    case Layout::v2_root: return "v2_root";
  }
  return "?";
}

Layout layout_from_name(std::string_view name) {
  for (Layout l : {Layout::v1_hybrid, Layout::v2_systemd, Layout::v2_root})
    if (layout_name(l) == name) return l;
  throw Error(fmt::format("unknown cgroup layout \"{}\" (v1_hybrid, v2_systemd, v2_root)", name));
}

Layout detect_layout() {
  if (!is_cgroup2(kV2Mount)) return Layout::v1_hybrid;
  struct stat st {};
  bool systemd = ::lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
  // HACO_FLEET_CGROUP_LAYOUT=v2_root keeps a fleet outside systemd's tree on
  // a systemd host (the layout of hosts without systemd, for testing it).
  if (const char* forced = std::getenv("HACO_FLEET_CGROUP_LAYOUT"); forced && *forced) {
    Layout wanted = layout_from_name(forced);
    if (wanted == Layout::v1_hybrid)
      throw InputError("HACO_FLEET_CGROUP_LAYOUT=v1_hybrid: this host has cgroup v2 only");
    return wanted;
  }
  return systemd ? Layout::v2_systemd : Layout::v2_root;
}

FleetCgroup delegated_own_cgroup(const std::string& fleet) {
  std::string dir = own_v2_dir();
  if (!is_delegated(dir))
    throw Error(fmt::format(
        "the cgroup {} is not delegated: run it from a systemd unit with Delegate=yes (haco-fleet@.service does)",
        dir));
  std::string unit = dir.substr(dir.rfind('/') + 1);
  return {fleet, Layout::v2_systemd, dir, unit};
}

FleetCgroup own_cgroup_of_engine_task(const std::string& fleet) {
  check_cgroup_name("fleet", fleet);
  const std::string task = own_v2_dir();
  const std::string parent = task.substr(0, task.rfind('/'));
  if (task == kV2Mount || parent == kV2Mount)
    throw Error(fmt::format("this process runs in the cgroup {}: a fleet nested in an engine's task needs a task "
                            "cgroup below the engine's own (Slurm makes one for each task with "
                            "ProctrackType=proctrack/cgroup)",
                            task));
  const std::string control = parent + "/cgroup.subtree_control";
  if (::access(control.c_str(), W_OK) != 0)
    throw Error::from_errno("access", control + " (the fleet's cgroup goes beside this task's cgroup)", errno);
  pass_fleet_controllers_down_to(task);
  return {fleet, Layout::v2_systemd, parent + "/" + beside_task_dir_name(fleet), ""};
}

bool is_beside_engine_task(const FleetCgroup& fleet) {
  return fleet.layout == Layout::v2_systemd && fleet.unit.empty() && !fleet.dir.empty() &&
         fleet.dir.substr(fleet.dir.rfind('/') + 1) == beside_task_dir_name(fleet.fleet);
}

FleetCgroup prepare_fleet_cgroup(FleetCgroup where, const std::string& state_root, bool join_supervisor_leaf) {
  if (where.layout == Layout::v1_hybrid) {
    // The instance cgroups are placed from this process's cgroups as they
    // are now: discovered (and kept for the spawners it forks) before it
    // moves into `.supervisor`.
    discover_hierarchies();
    std::string dir = supervisor_cgroup_dir(where);
    if (join_supervisor_leaf && !dir.empty())
      with_context("joining the supervisor's cgroup", [&] {
        std::string fleet_level = dir.substr(0, dir.rfind('/'));
        make_dir(fleet_level.substr(0, fleet_level.rfind('/')));
        make_dir(fleet_level);
        mark_state_root(where.fleet, fleet_level, state_root);
        make_dir(dir);
        write_kernel_file(dir + "/cgroup.procs", std::to_string(::getpid()));
      });
    return where;
  }
  return with_context(fmt::format("preparing the cgroups of fleet '{}'", where.fleet), [&] {
    if (where.layout == Layout::v2_root) {
      std::string top = std::string(kV2Mount) + "/haco-fleet";
      enable_controllers_below(kV2Mount);
      make_dir(top);
      enable_controllers_below(top);
      where.dir = fleet_dir_v2_root(where.fleet);
      make_dir(where.dir);
    } else if (where.dir.empty()) {
      where = delegated_own_cgroup(where.fleet);
    } else if (is_beside_engine_task(where)) {
      make_dir(where.dir);
    }
    mark_state_root(where.fleet, where.dir, state_root);
    make_dir(where.supervisor_dir());
    if (join_supervisor_leaf) {
      write_kernel_file(where.supervisor_dir() + "/cgroup.procs", std::to_string(::getpid()));
      move_processes(where.dir, where.supervisor_dir());
    }
    enable_controllers_below(where.dir);
    make_dir(where.instances_dir());
    enable_controllers_below(where.instances_dir());
    return where;
  });
}

std::string fleet_dir_v2_root(const std::string& fleet) {
  check_cgroup_name("fleet", fleet);
  return std::string(kV2Mount) + "/haco-fleet/" + fleet;
}

}  // namespace haco::cgroups
