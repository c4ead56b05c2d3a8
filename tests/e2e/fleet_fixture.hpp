// End-to-end fixtures: a phpinfo fleet brought up with the real haco-fleet
// binary from a real image, and what the kernel says about its processes.
// RunningFleet stops and removes everything it started in its destructor,
// even when haco-fleet itself failed half-way.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace haco::e2e {

// Builds (or finds cached) the image with scripts/build-php-image.sh and
// returns its path; `seed_layout` selects --seed-layout.
std::string php_image(bool seed_layout);

struct FleetOptions {
  std::string definition;             // .haco file
  std::uint16_t first_port = 0;
  std::uint16_t count = 0;
  std::string image;                  // HACO_PHP_IMAGE for the template
  std::vector<std::string> cleanup_paths;  // also removed (the seed's fixed rootfs paths)
};

class RunningFleet {
 public:
  explicit RunningFleet(FleetOptions options);
  ~RunningFleet();
  RunningFleet(const RunningFleet&) = delete;
  RunningFleet& operator=(const RunningFleet&) = delete;

  // haco-fleet up; its exit status and output.
  int up(std::string& output);
  // haco-fleet down --purge; its exit status and output.
  int down(std::string& output);
  // haco-fleet ps --json, the one fleet's document.
  nlohmann::json ps();

  const std::filesystem::path& dir() const { return dir_; }
  std::uint16_t first_port() const { return options_.first_port; }
  std::uint16_t last_port() const { return std::uint16_t(options_.first_port + options_.count - 1); }

 private:
  std::string fleet_command(const std::string& args) const;
  // Kills what `down` may have left (processes in the fleet's host uid
  // range), detaches mounts under dir(), removes the trees.
  void remove_leftovers();

  FleetOptions options_;
  std::filesystem::path dir_;
};

// GET / on 127.0.0.1:port; the whole response, or nullopt when the
// connection fails.
std::optional<std::string> http_get(std::uint16_t port);
bool port_accepts(std::uint16_t port);

// "8.2.36" from a phpinfo page, or "".
std::string php_version(const std::string& page);

struct ProcStatus {
  uid_t real_uid = 0;
  std::vector<pid_t> ns_pids;  // NSpid: host pid first, innermost last
};
ProcStatus proc_status(pid_t pid);
std::vector<pid_t> children_of(pid_t pid);
// The id inside the user namespace of `pid` that host id `host_id` maps to,
// from /proc/PID/uid_map; nullopt when unmapped.
std::optional<std::uint32_t> uid_inside(pid_t pid, std::uint32_t host_id);
// The cpu quota of the cgroup `pid` is in: {quota_us, period_us}, from the
// cgroup v1 cpu hierarchy or cgroup2's cpu.max.
std::pair<long, long> cpu_quota_of(pid_t pid);
// The directories of the cgroups `pid` is in (every hierarchy).
std::vector<std::filesystem::path> cgroup_dirs_of(pid_t pid);
// Processes whose real uid lies in [first, last].
std::vector<pid_t> processes_with_uid_in(std::uint32_t first, std::uint32_t last);
// Lines of /proc/self/mountinfo mentioning `text`.
std::vector<std::string> mounts_mentioning(const std::string& text);

}  // namespace haco::e2e
