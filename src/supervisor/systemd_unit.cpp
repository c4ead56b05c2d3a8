// Transient units through systemd-run and systemctl (the same D-Bus calls
// an operator would make by hand, with systemd's own error messages), and
// sd_notify from libsystemd.
#include "haco/systemd_unit.hpp"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include "haco/error.hpp"
#include "haco/run_program.hpp"
#include "haco/fault_point.hpp"
#include "haco/names.hpp"
#include "haco/unique_fd.hpp"

namespace haco::systemd {
namespace {

// systemctl and systemd-run with stdout and stderr captured together.
ProgramResult run(const std::vector<std::string>& argv) { return run_program(argv); }

std::string last_lines(const std::string& path, std::size_t count) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > count) lines.pop_front();
  }
  std::string text;
  for (const auto& l : lines) text += "\n  " + l;
  return text;
}

// The version of the systemd that answers systemctl ("systemd 252
// (252.30-1~deb12u2)" gives 252), 0 when it cannot be told.
int systemd_version() {
  auto result = run({"systemctl", "--version"});
  if (result.status != 0) return 0;
  std::string first = result.output.substr(0, result.output.find('\n'));
  if (first.rfind("systemd ", 0) != 0) return 0;
  return std::atoi(first.c_str() + 8);
}

}  // namespace

std::string fleet_unit_name(const std::string& fleet) {
  bool ok = !fleet.empty() && std::all_of(fleet.begin(), fleet.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
  if (!ok) throw InputError(fmt::format("fleet name \"{}\" cannot be part of a systemd unit name", fleet));
  return "haco-fleet-" + fleet + ".service";
}

void start_transient_service(const TransientService& service) {
  // A unit of the same name that failed earlier would block the name.
  run({"systemctl", "reset-failed", service.unit});
  std::vector<std::string> argv = {"systemd-run",
                                   "--quiet",
                                   "--collect",
                                   "--unit=" + service.unit,
                                   "--description=" + service.description,
                                   "--property=Type=notify",
                                   "--property=Delegate=yes",
                                   "--property=KillMode=mixed",
                                   "--property=TimeoutStopSec=90",
                                   "--property=StandardOutput=append:" + service.log_path,
                                   "--property=StandardError=append:" + service.log_path};
  // The unit lives as long as anything in its cgroup does (systemd 250 and
  // later), so instances outlive a supervisor that dies and `down` stops
  // them; with an older systemd they end with it.
  if (systemd_version() >= kExitTypeCgroupSince) argv.push_back("--property=ExitType=cgroup");
  // A unit starts with systemd's environment, not ours: the crash tests'
  // fault points (haco/fault_point.hpp) are passed on.
  for (const char* name : kFaultPointVariables)
    if (const char* value = std::getenv(name)) argv.push_back("--setenv=" + std::string(name) + "=" + value);
  argv.push_back("--");
  argv.insert(argv.end(), service.command.begin(), service.command.end());
  auto result = run(argv);
  if (result.status != 0)
    throw Error(fmt::format("systemd-run could not start {} (exit {}): {}{}", service.unit, result.status,
                            result.output.empty() ? "no message" : result.output,
                            last_lines(service.log_path, 5).empty()
                                ? ""
                                : "\n" + service.log_path + " ends with:" + last_lines(service.log_path, 5)));
}

void stop_unit(const std::string& unit) {
  if (!unit_is_active(unit)) {
    run({"systemctl", "reset-failed", unit});
    return;
  }
  auto result = run({"systemctl", "stop", unit});
  if (result.status != 0 && unit_is_active(unit))
    throw Error(fmt::format("systemctl stop {} failed (exit {}): {}", unit, result.status, result.output));
  run({"systemctl", "reset-failed", unit});
}

bool unit_is_active(const std::string& unit) {
  auto result = run({"systemctl", "show", "--property=ActiveState", "--value", unit});
  return result.status == 0 &&
         (result.output == "active" || result.output == "activating" || result.output == "deactivating" ||
          result.output == "reloading");
}

std::string unit_cgroup_dir(const std::string& unit) {
  auto result = run({"systemctl", "show", "--property=ControlGroup", "--value", unit});
  if (result.status != 0 || result.output.empty() || result.output.front() != '/') return {};
  return "/sys/fs/cgroup" + result.output;
}

std::vector<std::string> fleets_with_units() {
  std::vector<std::string> fleets;
  auto result = run({"systemctl", "list-units", "--all", "--plain", "--no-legend", "haco-fleet-*.service"});
  if (result.status != 0) return fleets;
  std::istringstream lines(result.output);
  for (std::string line; std::getline(lines, line);) {
    std::string unit = line.substr(0, line.find(' '));
    const std::string prefix = "haco-fleet-", suffix = ".service";
    if (unit.size() <= prefix.size() + suffix.size() || unit.rfind(prefix, 0) != 0 ||
        unit.compare(unit.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    std::string fleet = unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size());
    if (is_valid_name(fleet)) fleets.push_back(fleet);
  }
  return fleets;
}

bool notify(const std::string& state) {
  if (!std::getenv("NOTIFY_SOCKET")) return false;
  return ::sd_notify(0, state.c_str()) > 0;
}

}  // namespace haco::systemd
