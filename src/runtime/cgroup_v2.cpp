#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

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
    for (const auto& s : v2_settings) write_kernel_file(dir + "/" + s.key, s.value);
  } catch (...) {
    remove_dir(dir);
    throw;
  }
  return cg;
}

std::unique_ptr<V2Cgroup> V2Cgroup::open(const Hierarchy& v2, const std::string& fleet, const std::string& instance) {
  std::string dir = instance_dir(v2, fleet, instance);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return nullptr;
  return std::unique_ptr<V2Cgroup>(new V2Cgroup(dir, open_dir(dir)));
}

void V2Cgroup::add_process(pid_t pid) const { write_kernel_file(dir_ + "/cgroup.procs", std::to_string(pid)); }

std::vector<pid_t> V2Cgroup::processes() const { return read_procs(dir_); }

void V2Cgroup::kill_all(std::chrono::milliseconds timeout) const {
  write_kernel_file(dir_ + "/cgroup.kill", "1");
  if (!wait_until_empty(dir_, timeout))
    throw Error(fmt::format("cgroup {} still has processes {} ms after cgroup.kill", dir_, timeout.count()));
}

void V2Cgroup::remove() const { remove_dir(dir_); }

}  // namespace haco::cgroups
