// A fleet of templates/busybox-httpd.haco on three ports, brought up by the
// real haco-fleet binary from one of the places an operator runs it, with
// its state, data and rootfs trees in a directory of its own. The destructor
// removes whatever the fleet left, even when `up` or `down` failed: its unit,
// its processes (by cgroup and by host uid range), cgroups, mounts, trees.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace haco::vm {

// Where `up` runs.
enum class Caller {
  delegated_service,  // the test's own process: a service with Delegate=yes
  scope,              // systemd-run --scope: a transient scope, no delegation
  login_session,      // su -l root: a logind session opened through PAM
};
const char* caller_name(Caller caller);

struct UpResult {
  int status = -1;
  std::string output;
  std::string caller_cgroup;  // the cgroup `up` ran in
  std::string session;        // its logind session id, "" outside a session
};

class BusyboxFleet {
 public:
  static constexpr std::uint16_t kInstances = 3;

  // `tag` names the fleet (with the test's pid); ports first_port.. .
  // `extra_definition`: lines added at the end of the template's
  // Haconiwa.define block (limits, for example).
  BusyboxFleet(const std::string& tag, std::uint16_t first_port, const std::string& extra_definition = {});
  ~BusyboxFleet();
  BusyboxFleet(const BusyboxFleet&) = delete;
  BusyboxFleet& operator=(const BusyboxFleet&) = delete;

  UpResult up(Caller caller) const;
  testing::CommandResult down() const;
  // This fleet's document of `ps --json --name`; throws haco::Error when ps
  // fails or does not list exactly this fleet.
  nlohmann::json ps() const;

  const std::string& name() const { return name_; }
  // The definition `up` is given, and the environment it is evaluated with
  // ("HACO_BUSYBOX_IMAGE=... HACO_ROOTFS_BASE=...", one per line).
  const std::filesystem::path& definition() const { return definition_; }
  std::string environment() const;
  // haco-fleet with this fleet's --root and --data-root.
  std::string haco_command(const std::string& args) const;
  // The transient unit the fleet's supervisor runs in, and its cgroup.
  std::string unit() const { return "haco-fleet-" + name_ + ".service"; }
  std::string unit_cgroup() const { return "/system.slice/" + unit(); }
  std::vector<std::uint16_t> ports() const;
  static std::string instance_name(std::uint16_t port) { return "busybox-" + std::to_string(port); }
  // The host uids and gids the instances map (port*100 .. port*100+99).
  std::pair<uid_t, uid_t> host_ids() const;

  // What is left of the fleet, one sentence each: its unit, cgroups,
  // mounts, state directory, processes. Empty after a clean `down`.
  std::vector<std::string> leftovers() const;

 private:
  UpResult up_from_login_session(const std::string& script) const;
  void remove_leftovers() const;

  std::string name_;
  std::uint16_t first_port_;
  std::filesystem::path dir_;
  std::filesystem::path definition_;
};

// GET / on 127.0.0.1:port with curl; the body, or "" when it fails.
std::string http_get(std::uint16_t port);

}  // namespace haco::vm
