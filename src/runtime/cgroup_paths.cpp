#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/pidfd.hpp"
#include "haco/unique_fd.hpp"
#include "runtime/cgroup_backends.hpp"
#include "runtime/file_io.hpp"

namespace haco::cgroups {
void check_cgroup_name(const std::string& what, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw InputError(fmt::format("{} name \"{}\" cannot name a cgroup directory", what, name));
}

void write_setting(const std::string& dir, const CgroupSetting& setting) {
  std::string path = dir + "/" + setting.key;
  write_kernel_file(path, setting.value);
  std::string read = read_text_file(path);
  while (!read.empty() && (read.back() == '\n' || read.back() == ' ')) read.pop_back();
  if (!kernel_took_value(setting.key, setting.value, read))
    throw Error(fmt::format("{}: wrote \"{}\" but the kernel reads back \"{}\"", path, setting.value, read));
}

std::string fleet_dir(const Hierarchy& h, const std::string& fleet) {
  check_cgroup_name("fleet", fleet);
  return h.own_dir + "/haco-fleet/" + fleet;
}

std::string instance_dir(const Hierarchy& h, const std::string& fleet, const std::string& instance) {
  check_cgroup_name("instance", instance);
  return fleet_dir(h, fleet) + "/" + instance;
}

std::vector<pid_t> read_procs(const std::string& dir) {
  std::vector<pid_t> pids;
  std::string text;
  try {
    text = read_text_file(dir + "/cgroup.procs");
  } catch (const Error& e) {
    // Removed (ENOENT), or being removed (ENODEV: systemd takes a stopped
    // unit's tree away): a cgroup that is gone holds no process.
    if (e.sys_errno() == ENOENT || e.sys_errno() == ENODEV) return pids;
    throw;
  }
  std::istringstream in(text);
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

void kill_cgroup_members(const std::string& dir) {
  std::vector<std::pair<pid_t, UniqueFd>> pinned;
  for (pid_t pid : read_procs(dir)) {
    UniqueFd pidfd(::pidfd_open(pid, 0));
    if (!pidfd) {
      if (errno == ESRCH) continue;  // ended meanwhile
      throw Error::from_errno("pidfd_open", std::to_string(pid), errno);
    }
    pinned.emplace_back(pid, std::move(pidfd));
  }
  // A pid that ended between the first read and its pidfd_open may name
  // another process by now: only those still listed are this cgroup's.
  const std::vector<pid_t> still = read_procs(dir);
  for (const auto& [pid, pidfd] : pinned) {
    if (std::find(still.begin(), still.end(), pid) == still.end()) continue;
    if (::pidfd_send_signal(pidfd.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH)
      throw Error::from_errno("pidfd_send_signal", std::to_string(pid), errno);
  }
}

std::string make_instance_dirs(const Hierarchy& h, const std::string& fleet, const std::string& instance,
                               const std::function<void(const std::string&, const std::string&)>& prepare) {
  std::string parent = h.own_dir;
  for (const std::string& level : {std::string("haco-fleet"), fleet, instance}) {
    std::string dir = parent + "/" + level;
    if (::mkdir(dir.c_str(), 0755) == 0) {
      prepare(parent, dir);
    } else if (errno != EEXIST) {
      throw Error::from_errno("mkdir", dir, errno);
    }
    parent = dir;
  }
  return parent;
}

bool wait_until_empty(const std::string& dir, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  while (!read_procs(dir).empty()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
  return true;
}

void remove_dir(const std::string& dir) {
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) throw Error::from_errno("rmdir", dir, errno);
}

}  // namespace haco::cgroups
