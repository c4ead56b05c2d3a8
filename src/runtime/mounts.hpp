// The container's mount namespace, set up by the child (handshake step 3)
// in this order: / made private, the rootfs bound onto itself, the
// definition's mount points, mount_network_etc, mount_independent, then
// pivot_root. Every target is resolved inside the rootfs.
#pragma once

#include "haco/spec.hpp"
#include "haco/unique_fd.hpp"

namespace haco::runtime {

// Makes / recursively private, binds the rootfs onto itself when it is not a
// mount point, and returns an O_PATH fd of the rootfs mount.
UniqueFd prepare_rootfs(const ContainerSpec& c);
void mount_definition_points(int root_fd, const ContainerSpec& c);
void mount_network_etc(int root_fd, const ContainerSpec& c);
// procfs, sysfs, devtmpfs (or its equivalent), devpts, shm, in that order
// whatever the definition's order (devpts and shm live under /dev).
void mount_independent(int root_fd, const ContainerSpec& c);
// pivot_root into the rootfs and detach the old root.
void enter_rootfs(int root_fd);

}  // namespace haco::runtime
