// Capabilities of the init (child, handshake step 3, after pivot_root).
#pragma once

#include "haco/spec.hpp"

namespace haco::runtime {

// In a user namespace the init keeps the full set of that namespace's root:
// none of it reaches the host. Without one the init is the host's root;
// it then loses the capabilities whose effect is host-wide whatever the
// namespaces (modules, reboot, raw I/O, clock, kernel log, MAC policy, audit
// control), from its bounding set, so that no exec can regain them.
void restrict_capabilities(const ContainerSpec& c);

}  // namespace haco::runtime
