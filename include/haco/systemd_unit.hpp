// systemd as the owner of a fleet's lifetime on v2 hosts: the transient
// service that runs a fleet's supervisor (started with systemd-run, which
// waits until the supervisor says READY=1), stopping it, and sd_notify for
// a fleet that runs as a service itself (`up --foreground`).
#pragma once

#include <string>
#include <vector>

namespace haco::systemd {

// "haco-fleet-<fleet>.service". Throws haco::InputError for a fleet name
// that a unit name cannot carry.
std::string fleet_unit_name(const std::string& fleet);

struct TransientService {
  std::string unit;                  // haco-fleet-<fleet>.service
  std::string description;
  std::vector<std::string> command;  // absolute program, then its arguments
  std::string log_path;              // stdout and stderr, appended
};

// The first systemd that knows ExitType=cgroup.
inline constexpr int kExitTypeCgroupSince = 250;

// Starts `service` as a Type=notify unit with Delegate=yes and KillMode=mixed
// (and ExitType=cgroup where systemd has it: the unit stays until its cgroup
// is empty, so instances outlive a supervisor that dies) and returns once it
// reported READY=1. Throws with systemd-run's words and
// the last lines of the log when it did not start.
void start_transient_service(const TransientService& service);

// Stops the unit and waits for it; a unit that is not loaded is fine.
void stop_unit(const std::string& unit);

// Whether systemd knows the unit as active, activating or deactivating.
bool unit_is_active(const std::string& unit);

// The cgroup directory of an active unit (/sys/fs/cgroup + ControlGroup);
// empty when it has none (not running, unknown).
std::string unit_cgroup_dir(const std::string& unit);

// The fleets that have a unit of their own now (haco-fleet-<fleet>.service,
// loaded), found by listing the units: how a fleet whose state was lost is
// found again under systemd.
std::vector<std::string> fleets_with_units();

// sd_notify(3) when the process runs under a unit that listens
// ($NOTIFY_SOCKET); does nothing otherwise. Returns whether it was sent.
bool notify(const std::string& state);

}  // namespace haco::systemd
