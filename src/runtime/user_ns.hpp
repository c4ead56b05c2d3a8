// The user namespace: the parent writes the maps (handshake step 2), the
// child becomes root inside (step 3).
#pragma once

#include <sys/types.h>

#include "haco/spec.hpp"

namespace haco::runtime {

// A user namespace is implied by a uid or gid mapping.
bool wants_user_namespace(const ContainerSpec& c);

// Parent, step 2: setgroups "deny" only when this process lacks CAP_SETGID
// (so that a root caller leaves setgroups(2) usable inside), then gid_map
// and uid_map of `pid`.
void write_id_maps(pid_t pid, const ContainerSpec& c);

// Child, step 3: uid and gid 0 inside (the start of the mapped range
// outside), no supplementary groups.
void become_root(const ContainerSpec& c);

// uid and gid (ids of the caller's user namespace) for real, effective and
// saved ids, no supplementary groups. For a process that entered a user
// namespace as host root, the capabilities it holds there stay until exec
// (it never was that namespace's root, so the kernel drops none).
void become_user(uid_t uid, gid_t gid);

}  // namespace haco::runtime
