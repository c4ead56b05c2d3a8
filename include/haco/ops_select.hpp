// Which fleet and which of its instances a day-2 command means: one rule for
// `logs`, `exec`, `stop`, `start`, `restart`, `inspect`, `reload` and
// `down --ports`, so that they all answer a bad name or port the same way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "haco/state.hpp"

namespace haco::ops {

// The fleet `name` names (checked: haco::InputError when it has no state
// under the root), or, with `name` empty, the only fleet under the state
// root (InputError when there is none, or several: it lists them and asks
// for --name).
state::FleetPaths choose_fleet(const std::string& state_root, const std::string& data_root,
                               const std::string& name);

// The fleet's state; InputError when it has none (taken down meanwhile).
state::FleetState load_fleet(const state::FleetPaths& paths);

// One instance by its port ("10001") or its name ("phpinfo-10001");
// InputError naming the fleet and the ports it has when there is no such
// instance.
const state::InstanceRecord& find_instance(const state::FleetState& fleet, std::string_view port_or_name);

// The instances on `ports` (fleet::parse_port_range's form), in the fleet's
// order; InputError listing the ports the fleet does not have.
std::vector<const state::InstanceRecord*> instances_on_ports(const state::FleetState& fleet,
                                                             std::string_view ports);

// "10001-10003,10007": ports as a range list, for messages.
std::string describe_ports(std::vector<std::uint16_t> ports);

}  // namespace haco::ops
