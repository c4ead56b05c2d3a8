// Capabilities of the init (child, handshake step 3, after pivot_root).
#pragma once

#include "haco/spec.hpp"

namespace haco::runtime {

// The bounding set becomes the spec's set (haco-fleet's default, or what
// config.capabilities made of it; docs/security.md), so that no exec can
// regain anything else; every capability the kernel has beyond haco-fleet's
// table is dropped too. Inheritable and ambient are emptied: for a root
// process they would otherwise be added to what exec grants. Permitted and
// effective are cut to the bounding set, plus CAP_SYS_ADMIN while
// `keep_sys_admin` (seccomp(2) without no_new_privs needs it; exec, which
// gives root permitted = effective = bounding, drops it). The same applies
// with or without a user namespace: in one, these are the capabilities of
// its root there.
void restrict_capabilities(const ContainerSpec& c, bool keep_sys_admin);

}  // namespace haco::runtime
