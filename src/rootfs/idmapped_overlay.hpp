// The overlay strategy's kernel side: a user namespace carrying an
// instance's mapping, an idmapped (read-only) clone of the cached image
// tree, and an overlayfs on top of it built with the new mount API.
#pragma once

#include <string>
#include <vector>

#include "haco/spec.hpp"
#include "haco/unique_fd.hpp"

namespace haco::rootfs {

// An fd of a new user namespace with these maps (a child sharing this
// process's memory is cloned into it for the time it takes to write the
// maps and open /proc/CHILD/ns/user).
UniqueFd make_userns(const std::vector<IdMapping>& uid_map, const std::vector<IdMapping>& gid_map);

// A detached clone of the mount at `path`, read-only and nodev, idmapped
// through `userns_fd` when it is valid.
UniqueFd idmapped_tree(const std::string& path, int userns_fd);

// Mounts overlay(lower = lower_fds, top first; upper, work) on `target`,
// nodev. `source` names the mount in /proc/self/mountinfo. Kernels before 6.8
// cannot take a lower layer as an fd: there each is attached at
// `lower_attach_point` (with "-N" after it for the N-th beyond the first: paths
// that must not exist, in a private directory) for the time of the mount, and
// removed again.
void mount_overlay(const std::vector<UniqueFd>& lower_fds, const std::string& lower_attach_point,
                   const std::string& upper, const std::string& work, const std::string& target,
                   const std::string& source);

}  // namespace haco::rootfs
