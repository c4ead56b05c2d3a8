#include "vm/systemd_host.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/mountinfo.hpp"
#include "test_support.hpp"

namespace haco::vm {
namespace fs = std::filesystem;

std::string systemd_cgroup2_mismatch() {
  struct statfs st {};
  if (::statfs("/sys/fs/cgroup", &st) != 0 || st.f_type != CGROUP2_SUPER_MAGIC)
    return "/sys/fs/cgroup is not cgroup2fs (a cgroup v1 or hybrid host)";
  std::error_code ec;
  if (!fs::is_directory("/run/systemd/system", ec)) return "systemd is not the init system (/run/systemd/system missing)";
  std::string init;
  try {
    init = trim(read_text_file("/proc/1/comm"));
  } catch (const Error&) {
  }
  if (init != "systemd") return fmt::format("PID 1 is \"{}\", not systemd", init);
  return {};
}

void SystemdCgroup2Test::SetUp() {
  std::string mismatch = systemd_cgroup2_mismatch();
  if (::geteuid() != 0) mismatch = "needs root";
  if (mismatch.empty()) return;
  // In the guest the facts are what is under test: their absence is a failure.
  if (std::getenv("HACO_VM_GUEST")) FAIL() << "the guest is not what these tests need: " << mismatch;
  GTEST_SKIP() << "needs root on a host with systemd as PID 1 and only the cgroup v2 hierarchy: " << mismatch
               << ". Run them in the Debian 12 guest: ctest -L vm-host (docs/vm.md)";
}

std::string trim(const std::string& text) {
  auto first = text.find_first_not_of(" \t\n");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\n") - first + 1);
}

std::string cgroup_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/cgroup", pid));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

fs::path cgroup_dir(const std::string& cgroup) { return fs::path("/sys/fs/cgroup") / fs::path(cgroup).relative_path(); }

std::vector<pid_t> cgroup_procs(const fs::path& dir) {
  std::vector<pid_t> pids;
  std::ifstream in(dir / "cgroup.procs");
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

std::vector<fs::path> cgroups_containing(const std::string& text) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory(ec) && it->path().string().find(text) != std::string::npos) found.push_back(it->path());
  }
  std::sort(found.begin(), found.end(),
            [](const fs::path& a, const fs::path& b) { return a.string().size() > b.string().size(); });
  return found;
}

CgroupSnapshot::CgroupSnapshot(fs::path dir)
    : dir_(std::move(dir)), descendants_(descendants()), subtree_control_(subtree_control()) {}

std::vector<fs::path> CgroupSnapshot::descendants() const {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_directory(ec)) found.push_back(it->path());
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<std::string> CgroupSnapshot::subtree_control() const {
  std::vector<std::string> controllers;
  std::istringstream in(read_text_file(dir_ / "cgroup.subtree_control"));
  for (std::string c; in >> c;) controllers.push_back(c);
  std::sort(controllers.begin(), controllers.end());
  return controllers;
}

std::vector<std::string> CgroupSnapshot::changes() const {
  std::vector<std::string> changed;
  for (const auto& dir : descendants())
    if (!std::binary_search(descendants_.begin(), descendants_.end(), dir)) changed.push_back("new cgroup " + dir.string());
  for (const auto& c : subtree_control())
    if (!std::binary_search(subtree_control_.begin(), subtree_control_.end(), c))
      changed.push_back(fmt::format("{} enabled in {}/cgroup.subtree_control", c, dir_.string()));
  return changed;
}

void CgroupSnapshot::restore() const {
  std::vector<fs::path> made;
  for (const auto& dir : descendants())
    if (!std::binary_search(descendants_.begin(), descendants_.end(), dir)) made.push_back(dir);
  std::sort(made.begin(), made.end(),
            [](const fs::path& a, const fs::path& b) { return a.string().size() > b.string().size(); });
  for (int round = 0; round < 100 && !made.empty(); ++round) {
    std::vector<fs::path> left;
    for (const auto& dir : made) {
      std::ofstream(dir / "cgroup.kill") << "1";
      if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) left.push_back(dir);
    }
    made = left;
    if (!made.empty()) ::usleep(50000);
  }
  for (const auto& c : subtree_control())
    if (!std::binary_search(subtree_control_.begin(), subtree_control_.end(), c))
      std::ofstream(dir_ / "cgroup.subtree_control") << "-" << c;
}

std::string unit_property(const std::string& unit, const std::string& property) {
  auto r = testing::run_command(fmt::format("systemctl show -p {} --value '{}'", property, unit));
  return trim(r.output);
}

std::vector<std::string> mounts_mentioning(const std::string& text) {
  std::vector<std::string> found;
  for (const MountInfo& m : read_mountinfo())
    if (m.mount_point.find(text) != std::string::npos || m.super_options.find(text) != std::string::npos)
      found.push_back(m.mount_point + " (" + m.fstype + ")");
  return found;
}

std::vector<pid_t> processes_with_uid_in(uid_t first, uid_t last) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    struct stat st {};
    // /proc/PID is owned by the process's effective uid.
    if (::stat(entry.path().c_str(), &st) == 0 && st.st_uid >= first && st.st_uid <= last)
      found.push_back(std::stoi(name));
  }
  return found;
}

}  // namespace haco::vm
