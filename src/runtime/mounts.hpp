// The container's mounts (docs/runtime.md, "Mounts"). The host side builds
// them with host privileges in a staging mount namespace, so the mapped ids
// never walk a host path; the child copies that namespace into its own, which
// locks every mount the host side made, then adds what must belong to the
// container's own user namespace. Every target is resolved inside the rootfs.
//
//   host, before clone:                               rootfs_tree
//   host, before clone, inside the staging namespace:  stage_rootfs
//   host, handshake step 2 (the child's namespaces exist): mount_container_filesystems
//   child, handshake step 3:                             enter_own_mount_namespace
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "haco/spec.hpp"
#include "haco/unique_fd.hpp"
#include "runtime/staging_namespace.hpp"

namespace haco::runtime {

// A tmpfs without these gets them, so that no container can fill the host's
// memory through it (docs/security.md, "Mounts").
inline constexpr const char* kTmpfsDefaultSize = "64m";
inline constexpr const char* kTmpfsDefaultInodes = "65536";

// One step of the host side in the staging namespace. The mount is made
// beforehand in the host's own namespaces (host paths, the child's pid and
// net namespaces), then attached in order.
struct StagedMount {
  enum class Kind {
    onto_directory,   // attach `mount` on the directory `target` (created when missing)
    onto_file,        // attach `mount` on the file `target` (created empty when missing)
    over_existing,    // attach `mount` on `target` when it exists (masks in /proc and /sys)
    read_only_again,  // bind `target` onto itself read-only (when it exists)
    symlink,          // create the symlink `target` -> `link` when missing
  };
  Kind kind = Kind::onto_directory;
  std::string target;
  UniqueFd mount;
  std::string link;
};
using MountPlan = std::vector<StagedMount>;

// In the caller's namespace: the rootfs tree, detached (open_tree of the
// path, recursive, every mount of it nodev and private).
UniqueFd rootfs_tree(const ContainerSpec& c);
// Inside the staging namespace: the rootfs tree becomes the root. A
// container cloned now starts in it.
void stage_rootfs(const UniqueFd& tree, const ContainerSpec& c);

// The definition's binds and tmpfs mounts, network etc, and mount_independent
// (but devpts), made for the container whose init is `pid` and attached in
// `staging`. Created targets belong to the container's root.
void mount_container_filesystems(const ContainerSpec& c, pid_t pid, StagingNamespace& staging);

// The child, root of its user namespace: copies the staging namespace into a
// mount namespace of its own, then mounts devpts and the definition's mounts
// of other filesystem types (proc, mqueue, ...), which must be made in its
// own namespaces.
void enter_own_mount_namespace(const ContainerSpec& c);

// The host ids of the container's root (0:0 without a user namespace), or
// nothing when the maps do not map id 0.
std::optional<Owner> container_root_on_host(const ContainerSpec& c);
// `options` for a tmpfs of the container: the default size and inode count
// when not given, uid=/gid= as the container's ids translated to the host's
// (the host side makes the tmpfs), owned by the container's root by default.
std::string tmpfs_options(const ContainerSpec& c, const std::string& options);

// independent_mounts.cpp: procfs (with its masks), sysfs, devtmpfs (its
// equivalent), shm, in that order whatever the definition's order; devpts is
// the child's.
void plan_independent_mounts(const ContainerSpec& c, pid_t pid, MountPlan& plan);
void mount_devpts(int root_fd, const ContainerSpec& c);

}  // namespace haco::runtime
