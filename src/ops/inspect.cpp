// `inspect`: an instance's record and what the kernel shows of it
// (haco/ops_inspect.hpp).
#include "haco/ops_inspect.hpp"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/mountinfo.hpp"
#include "haco/ops_select.hpp"

namespace haco::ops {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_cgroup2(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// The file's content without its trailing newline and spaces.
std::string read_trimmed(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error::from_errno("open", path, errno);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string read_link(const std::string& path) {
  char buffer[256];
  ssize_t n = ::readlink(path.c_str(), buffer, sizeof(buffer));
  if (n < 0) throw Error::from_errno("readlink", path, errno);
  return std::string(buffer, static_cast<std::size_t>(n));
}

std::vector<pid_t> cgroup_pids(const std::vector<std::string>& dirs, std::string& error) {
  std::set<pid_t> pids;
  bool any = false;
  for (const auto& dir : dirs) {
    if (!exists(dir)) continue;
    any = true;
    try {
      for (pid_t pid : cgroups::read_procs(dir)) pids.insert(pid);
    } catch (const Error& e) {
      error = e.what();
    }
  }
  if (!any) error = dirs.empty() ? "no cgroup directory recorded" : "its cgroup directories are gone";
  return {pids.begin(), pids.end()};
}

// What the instance's state is, from the record and, without a supervisor
// to keep it current, from the kernel (as `ps` says it).
std::string effective_state(const state::InstanceRecord& r, bool supervised) {
  std::string recorded(state::instance_state_name(r.state));
  if (supervised || r.process.pid <= 0) return recorded;
  return state::is_alive(r.process) ? "running (unsupervised)" : "gone";
}

}  // namespace

bool LimitView::matches() const { return kernel && cgroups::kernel_took_value(key, wanted, *kernel); }

std::vector<LimitView> read_limits(const std::vector<CgroupSetting>& settings, const std::vector<std::string>& dirs) {
  std::vector<std::string> v1, v2;
  for (const auto& dir : dirs) {
    if (!exists(dir)) continue;
    (is_cgroup2(dir) ? v2 : v1).push_back(dir);
  }
  // A hybrid host keeps the limits in v1 and only membership in v2.
  const bool in_v1 = !v1.empty() || (v2.empty() && cgroups::detect_layout() == cgroups::Layout::v1_hybrid);
  const std::vector<std::string>& candidates = in_v1 ? v1 : v2;
  std::vector<LimitView> out;
  for (const auto& setting : in_v1 ? cgroups::translate_to_v1(settings) : cgroups::translate_to_v2(settings)) {
    LimitView view{setting.key, setting.value, "", std::nullopt, ""};
    auto dir = std::find_if(candidates.begin(), candidates.end(),
                            [&](const std::string& d) { return exists(d + "/" + setting.key); });
    if (dir == candidates.end()) {
      view.error = dirs.empty()         ? "no cgroup directory recorded"
                   : candidates.empty() ? "the instance's cgroup directories are gone"
                                        : "no cgroup directory of the instance has " + setting.key;
    } else {
      view.dir = *dir;
      try {
        view.kernel = read_trimmed(*dir + "/" + setting.key);
      } catch (const Error& e) {
        view.error = e.what();
      }
    }
    out.push_back(std::move(view));
  }
  return out;
}

std::vector<NamespaceView> read_namespaces(pid_t pid) {
  const std::string dir = fmt::format("/proc/{}/ns", pid);
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) names.push_back(entry.path().filename());
  if (ec) throw Error::from_errno("opendir", dir, ec.value());
  std::sort(names.begin(), names.end());
  std::vector<NamespaceView> out;
  for (const auto& name : names) {
    NamespaceView view{name, read_link(dir + "/" + name), ""};
    try {
      view.host_link = read_link("/proc/self/ns/" + name);
    } catch (const Error&) {
      // A namespace kind this process cannot read.
    }
    out.push_back(std::move(view));
  }
  return out;
}

InspectResult inspect(const std::string& state_root, const std::string& data_root, const std::string& fleet,
                      const std::string& port_or_name) {
  const state::FleetPaths paths = choose_fleet(state_root, data_root, fleet);
  const state::FleetState state = load_fleet(paths);
  InspectResult out;
  out.fleet = state.fleet;
  out.definition = state.definition;
  out.record = find_instance(state, port_or_name);
  out.supervised = state::is_alive(state.supervisor);
  out.state = effective_state(out.record, out.supervised);
  out.cgroup_dirs = out.record.cgroup_paths;
  const state::ProcessIdentity& init = out.record.process;
  out.init_running = init.pid > 0 && state::is_alive(init);
  if (!out.init_running)
    out.not_running = init.pid > 0 ? fmt::format("its init (pid {}) is gone", init.pid)
                                   : fmt::format("not running ({})", state::instance_state_name(out.record.state));

  // Read whatever is there: a dead instance's cgroup may still hold
  // processes it left, and its limits.
  out.pids = cgroup_pids(out.cgroup_dirs, out.pids_error);
  out.limits = read_limits(out.record.spec.container.cgroup, out.cgroup_dirs);
  if (out.init_running) {
    try {
      out.namespaces = read_namespaces(init.pid);
    } catch (const Error& e) {
      out.namespaces_error = e.what();
    }
    try {
      for (auto& m : read_mountinfo(fmt::format("/proc/{}/mountinfo", init.pid)))
        out.mounts.push_back({std::move(m.mount_point), std::move(m.fstype), std::move(m.source),
                              std::move(m.super_options)});
    } catch (const Error& e) {
      out.mounts_error = e.what();
    }
    // The pid was checked with its start time before reading; checked again,
    // so that what a recycled pid showed is not reported as the init's.
    if (!state::is_alive(init)) {
      out.init_running = false;
      out.not_running = fmt::format("its init (pid {}) ended while it was inspected", init.pid);
      out.namespaces.clear();
      out.mounts.clear();
    }
  }
  if (!out.init_running) {
    out.namespaces_error = out.not_running;
    out.mounts_error = out.not_running;
  }
  for (const auto& path : {out.record.log_path, out.record.log_path + ".1"}) {
    if (out.record.log_path.empty()) break;
    struct stat st {};
    out.logs.push_back({path, ::stat(path.c_str(), &st) == 0 ? std::optional<std::uint64_t>(st.st_size) : std::nullopt});
  }
  return out;
}

}  // namespace haco::ops
