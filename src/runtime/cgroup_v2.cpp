#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <set>
#include <sstream>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "runtime/cgroup_backends.hpp"
#include "runtime/cgroup_keys.hpp"
#include "runtime/file_io.hpp"

namespace haco::cgroups {
namespace {

UniqueFd open_dir(const std::string& dir) {
  return UniqueFd(static_cast<int>(
      check_sys(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open", dir)));
}

}  // namespace

std::unique_ptr<V2Cgroup> V2Cgroup::create(const Hierarchy& v2, const std::string& fleet,
                                           const std::string& instance,
                                           const std::vector<CgroupSetting>& v2_settings) {
  // Each level must pass the controllers down to the next (cgroup.subtree_control).
  std::string enable;
  for (const auto& s : v2_settings) {
    std::string c = fmt::format("+{}", controller_of(s.key));
    if (enable.find(c) == std::string::npos) enable.append(enable.empty() ? "" : " ").append(c);
  }
  auto enable_in = [&](const std::string& dir) {
    if (!enable.empty())
      with_context(fmt::format("enabling {} for the cgroups below {}", enable, dir),
                   [&] { write_kernel_file(dir + "/cgroup.subtree_control", enable); });
  };
  enable_in(v2.own_dir);
  std::string dir = make_instance_dirs(v2, fleet, instance, [&](const std::string&, const std::string& made) {
    if (made != instance_dir(v2, fleet, instance)) enable_in(made);
  });
  std::unique_ptr<V2Cgroup> cg(new V2Cgroup(dir, open_dir(dir)));
  try {
    for (const auto& s : v2_settings) write_setting(dir, s);
  } catch (...) {
    remove_dir(dir);
    throw;
  }
  return cg;
}

std::unique_ptr<V2Cgroup> V2Cgroup::create_leaf(const std::string& instances_dir, const std::string& instance,
                                                const std::vector<CgroupSetting>& v2_settings) {
  check_cgroup_name("instance", instance);
  std::set<std::string> enabled;
  std::istringstream words(read_text_file(instances_dir + "/cgroup.subtree_control"));
  for (std::string w; words >> w;) enabled.insert(w);
  std::string missing;
  for (const auto& s : v2_settings) {
    auto c = controller_of(s.key);
    if (!enabled.count(c) && missing.find(" " + c) == std::string::npos) missing.append(" ").append(c);
  }
  if (!missing.empty())
    throw Error(fmt::format("the fleet's cgroup {} does not pass down the controller(s){} (its cgroup.controllers: {})",
                            instances_dir, missing, read_text_file(instances_dir + "/cgroup.controllers")));
  std::string dir = instances_dir + "/" + instance;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw Error::from_errno("mkdir", dir, errno);
  try {
    std::unique_ptr<V2Cgroup> cg(new V2Cgroup(dir, open_dir(dir)));
    for (const auto& s : v2_settings) write_setting(dir, s);
    return cg;
  } catch (...) {
    ::rmdir(dir.c_str());
    throw;
  }
}

std::unique_ptr<V2Cgroup> V2Cgroup::open_leaf(const std::string& instances_dir, const std::string& instance) {
  check_cgroup_name("instance", instance);
  std::string dir = instances_dir + "/" + instance;
  // systemd removes a stopped unit's tree on its own: gone is not an error.
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd && errno == ENOENT) return nullptr;
  check_sys(fd.get(), "open", dir);
  return std::unique_ptr<V2Cgroup>(new V2Cgroup(dir, std::move(fd)));
}

std::unique_ptr<V2Cgroup> V2Cgroup::open(const Hierarchy& v2, const std::string& fleet, const std::string& instance) {
  std::string dir = instance_dir(v2, fleet, instance);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return nullptr;
  return std::unique_ptr<V2Cgroup>(new V2Cgroup(dir, open_dir(dir)));
}

void V2Cgroup::add_process(pid_t pid) const { write_kernel_file(dir_ + "/cgroup.procs", std::to_string(pid)); }

std::vector<pid_t> V2Cgroup::processes() const {
  try {
    return read_procs(dir_);
  } catch (const Error& e) {
    if (e.sys_errno() == ENOENT) return {};  // removed with its systemd unit
    throw;
  }
}

void V2Cgroup::update_settings(const std::vector<CgroupSetting>& settings) const {
  for (const auto& s : translate_to_v2(settings)) {
    struct stat st {};
    if (::stat((dir_ + "/" + s.key).c_str(), &st) != 0)
      throw Error(fmt::format("{}: the cgroup {} has no {} file (the controller \"{}\" is not enabled for it)", s.key,
                              dir_, s.key, controller_of(s.key)));
    write_setting(dir_, s);
  }
}

void V2Cgroup::kill_all(std::chrono::milliseconds timeout) const {
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0 && errno == ENOENT) return;  // removed with its systemd unit
  if (::stat((dir_ + "/cgroup.kill").c_str(), &st) != 0) {
    // Kernels before 5.14 have no cgroup.kill: frozen, no process can fork
    // between reading the list and the kill.
    struct Thaw {
      const std::string& dir;
      ~Thaw() {
        try {
          write_kernel_file(dir + "/cgroup.freeze", "0");
        } catch (const Error&) {
          // Removed meanwhile: nothing is frozen any more.
        }
      }
    };
    write_kernel_file(dir_ + "/cgroup.freeze", "1");
    Thaw thaw{dir_};
    kill_cgroup_members(dir_);
  } else {
    write_kernel_file(dir_ + "/cgroup.kill", "1");
  }
  if (!wait_until_empty(dir_, timeout))
    throw Error(fmt::format("cgroup {} still has processes {} ms after cgroup.kill", dir_, timeout.count()));
}

void V2Cgroup::remove() const { remove_dir(dir_); }

}  // namespace haco::cgroups
