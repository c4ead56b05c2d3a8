// Which fleet and which instances a day-2 command means.
#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/ops_select.hpp"

namespace haco::ops {

state::FleetPaths choose_fleet(const std::string& state_root, const std::string& data_root,
                               const std::string& name) {
  if (!name.empty()) {
    state::FleetPaths paths{state_root, data_root, name};
    if (!state::load_state(paths)) throw InputError("no fleet named '" + name + "' under " + state_root);
    return paths;
  }
  auto fleets = state::list_fleets(state_root);
  if (fleets.empty()) throw InputError("no fleet under " + state_root);
  if (fleets.size() > 1) {
    std::string names;
    for (const auto& f : fleets) names += (names.empty() ? "" : ", ") + f;
    throw InputError(fmt::format("{} fleets are running ({}): say which with --name FLEET", fleets.size(), names));
  }
  return state::FleetPaths{state_root, data_root, fleets.front()};
}

state::FleetState load_fleet(const state::FleetPaths& paths) {
  auto fleet = state::load_state(paths);
  if (!fleet) throw InputError("no fleet named '" + paths.fleet + "' under " + paths.state_root);
  return std::move(*fleet);
}

namespace {

std::vector<std::uint16_t> fleet_ports(const state::FleetState& fleet) {
  std::vector<std::uint16_t> ports;
  for (const auto& r : fleet.instances) ports.push_back(r.spec.port);
  return ports;
}

}  // namespace

const state::InstanceRecord& find_instance(const state::FleetState& fleet, std::string_view port_or_name) {
  unsigned port = 0;
  const char* end = port_or_name.data() + port_or_name.size();
  auto [ptr, ec] = std::from_chars(port_or_name.data(), end, port);
  bool is_port = !port_or_name.empty() && ec == std::errc() && ptr == end;
  for (const auto& r : fleet.instances)
    if (is_port ? r.spec.port == port : r.name() == port_or_name) return r;
  throw InputError(fmt::format("fleet '{}' has no instance {} '{}' (its ports: {})", fleet.fleet,
                               is_port ? "on port" : "named", port_or_name, describe_ports(fleet_ports(fleet))));
}

std::vector<const state::InstanceRecord*> instances_on_ports(const state::FleetState& fleet,
                                                             std::string_view ports) {
  auto wanted = fleet::parse_port_range(ports);  // InputError quoting the bad part
  std::set<std::uint16_t> remaining(wanted.begin(), wanted.end());
  std::vector<const state::InstanceRecord*> out;
  for (const auto& r : fleet.instances)
    if (remaining.erase(r.spec.port)) out.push_back(&r);
  if (!remaining.empty())
    throw InputError(fmt::format("fleet '{}' has no instance{} on port{} {} (its ports: {})", fleet.fleet,
                                 remaining.size() == 1 ? "" : "s", remaining.size() == 1 ? "" : "s",
                                 describe_ports({remaining.begin(), remaining.end()}),
                                 describe_ports(fleet_ports(fleet))));
  return out;
}

std::string describe_ports(std::vector<std::uint16_t> ports) {
  if (ports.empty()) return "none";
  std::sort(ports.begin(), ports.end());
  std::string out;
  for (std::size_t i = 0; i < ports.size();) {
    std::size_t j = i;
    while (j + 1 < ports.size() && ports[j + 1] == ports[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? fmt::format("{}", ports[i]) : fmt::format("{}-{}", ports[i], ports[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace haco::ops
