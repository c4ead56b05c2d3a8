#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>
#include <thread>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "runtime/cgroup_backends.hpp"
#include "runtime/cgroup_keys.hpp"
#include "runtime/file_io.hpp"

namespace haco::cgroups {
namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A new v1 cpuset starts with empty cpus and mems, and no process can join
// it until both are filled: copy them from the parent.
void inherit_cpuset(const std::string& parent, const std::string& dir) {
  for (const char* file : {"cpuset.cpus", "cpuset.mems"})
    write_kernel_file(dir + "/" + file, trimmed(read_text_file(parent + "/" + file)));
}

void wait_for_freezer_state(const std::string& dir, const std::string& wanted, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (trimmed(read_text_file(dir + "/freezer.state")) != wanted) {
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error(fmt::format("cgroup {} did not reach {} within {} ms", dir, wanted, timeout.count()));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

}  // namespace

std::unique_ptr<V1Cgroup> V1Cgroup::create(const Hierarchies& h, const std::string& fleet, const std::string& instance,
                                           const std::vector<CgroupSetting>& v1_settings, bool use_v2_membership) {
  std::vector<std::string> controllers;
  for (const auto& s : v1_settings) {
    auto c = controller_of(s.key);
    if (std::find(controllers.begin(), controllers.end(), c) == controllers.end()) controllers.push_back(c);
  }
  // pids and freezer find and stop every process; where a host lacks them,
  // the v2 membership (or a plain kill) does without.
  for (const char* helper : {"pids", "freezer"})
    if (h.v1_for(helper) && std::find(controllers.begin(), controllers.end(), helper) == controllers.end())
      controllers.emplace_back(helper);
  std::vector<Dir> dirs;
  std::unique_ptr<V2Cgroup> membership;
  try {
    for (const auto& c : controllers) {
      const Hierarchy* hier = h.v1_for(c);
      if (!hier) throw Error(fmt::format("the cgroup v1 controller \"{}\" is not mounted", c));
      std::string path = instance_dir(*hier, fleet, instance);
      if (std::any_of(dirs.begin(), dirs.end(), [&](const Dir& d) { return d.path == path; })) continue;
      bool cpuset = hier->has("cpuset");
      make_instance_dirs(*hier, fleet, instance, [&](const std::string& parent, const std::string& made) {
        if (cpuset) inherit_cpuset(parent, made);
      });
      dirs.push_back({path, hier->controllers});
    }
    if (use_v2_membership && h.v2) membership = V2Cgroup::create(*h.v2, fleet, instance, {});
    if (dirs.empty() && !membership) throw Error("no cgroup hierarchy can hold the instance's processes");
    for (const auto& s : v1_settings) {
      auto c = controller_of(s.key);
      auto d = std::find_if(dirs.begin(), dirs.end(), [&](const Dir& d) {
        return std::find(d.controllers.begin(), d.controllers.end(), c) != d.controllers.end();
      });
      write_setting(d->path, s);
    }
  } catch (...) {
    for (const auto& d : dirs) ::rmdir(d.path.c_str());
    if (membership) ::rmdir(membership->paths().front().c_str());
    throw;
  }
  return std::unique_ptr<V1Cgroup>(new V1Cgroup(std::move(dirs), std::move(membership)));
}

std::unique_ptr<V1Cgroup> V1Cgroup::open(const Hierarchies& h, const std::string& fleet, const std::string& instance) {
  std::vector<Dir> dirs;
  for (const auto& hier : h.v1) {
    std::string dir = instance_dir(hier, fleet, instance);
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) dirs.push_back({dir, hier.controllers});
  }
  std::unique_ptr<V2Cgroup> membership = h.v2 ? V2Cgroup::open(*h.v2, fleet, instance) : nullptr;
  if (dirs.empty()) return nullptr;
  return std::unique_ptr<V1Cgroup>(new V1Cgroup(std::move(dirs), std::move(membership)));
}

const V1Cgroup::Dir* V1Cgroup::dir_with(std::string_view controller) const {
  for (const auto& d : dirs_)
    if (std::find(d.controllers.begin(), d.controllers.end(), controller) != d.controllers.end()) return &d;
  return nullptr;
}

void V1Cgroup::add_process(pid_t pid) const {
  add_cloned_process(pid);
  if (membership_) membership_->add_process(pid);
}

void V1Cgroup::add_cloned_process(pid_t pid) const {
  std::string p = std::to_string(pid);
  for (const auto& d : dirs_) write_kernel_file(d.path + "/cgroup.procs", p);
}

std::vector<pid_t> V1Cgroup::processes() const {
  if (membership_) return membership_->processes();
  const Dir* d = dir_with("pids");
  return dirs_.empty() ? std::vector<pid_t>{} : read_procs(d ? d->path : dirs_.front().path);
}

void V1Cgroup::update_settings(const std::vector<CgroupSetting>& settings) const {
  std::vector<std::pair<const Dir*, CgroupSetting>> writes;
  for (const auto& s : translate_to_v1(settings)) {
    const Dir* d = dir_with(controller_of(s.key));
    if (!d)
      throw Error(fmt::format("{}: the instance's cgroup has no \"{}\" directory (no setting of that controller when "
                              "it started): it takes effect once the instance starts again",
                              s.key, controller_of(s.key)));
    writes.emplace_back(d, s);
  }
  // One v1 setting may bound another (memsw never below the memory limit):
  // one the kernel refused is written again once the others are in.
  std::vector<std::pair<const Dir*, CgroupSetting>> refused;
  for (const auto& [d, s] : writes) {
    try {
      write_setting(d->path, s);
    } catch (const Error&) {
      refused.emplace_back(d, s);
    }
  }
  for (const auto& [d, s] : refused) write_setting(d->path, s);
}

void V1Cgroup::kill_all(std::chrono::milliseconds timeout) const {
  if (membership_) {
    membership_->kill_all(timeout);
    // The v1 directories hold the same processes; they left with the v2 kill.
    for (const auto& d : dirs_)
      if (!wait_until_empty(d.path, timeout))
        throw Error(fmt::format("cgroup {} still has processes after cgroup.kill", d.path));
    return;
  }
  freeze_and_kill(timeout);
}

void V1Cgroup::freeze_and_kill(std::chrono::milliseconds timeout) const {
  const Dir* freezer = dir_with("freezer");
  const Dir* members = dir_with("pids");
  if (dirs_.empty()) return;
  if (!members) members = freezer ? freezer : &dirs_.front();
  // Frozen, no process can fork a new one between reading the list and the kill.
  // Thawed again whatever happens: a cgroup left frozen would hold its
  // processes (and the instance's memory) until someone thaws it by hand.
  struct Thaw {
    const Dir* freezer;
    void now() {
      if (!freezer) return;
      const Dir* d = std::exchange(freezer, nullptr);
      try {
        write_kernel_file(d->path + "/freezer.state", "THAWED");
      } catch (const Error&) {
        // Removed meanwhile: nothing is frozen any more.
      }
    }
    ~Thaw() { now(); }
  } thaw{freezer};
  if (freezer) {
    write_kernel_file(freezer->path + "/freezer.state", "FROZEN");
    wait_for_freezer_state(freezer->path, "FROZEN", timeout);
  }
  kill_cgroup_members(members->path);
  thaw.now();  // the killed processes die once thawed
  for (const auto& d : dirs_)
    if (!wait_until_empty(d.path, timeout))
      throw Error(fmt::format("cgroup {} still has processes {} ms after SIGKILL", d.path, timeout.count()));
}

void V1Cgroup::remove() const {
  for (const auto& d : dirs_) remove_dir(d.path);
  if (membership_) membership_->remove();
}

std::vector<std::string> V1Cgroup::paths() const {
  std::vector<std::string> out;
  for (const auto& d : dirs_) out.push_back(d.path);
  if (membership_) out.push_back(membership_->paths().front());
  return out;
}

}  // namespace haco::cgroups
