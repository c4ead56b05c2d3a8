// Paths resolved inside the rootfs and mounts made with the new mount API
// (fsopen/fsconfig/fsmount, open_tree, mount_setattr, move_mount). Every
// target is an fd obtained with openat2(RESOLVE_IN_ROOT) on the rootfs, so a
// symlink in the rootfs cannot send a mount outside of it.
#pragma once

#include <string>

#include "haco/unique_fd.hpp"

namespace haco::runtime {

// O_PATH fd of `path` resolved as if `root_fd` were "/"; -1 with errno when
// it does not exist (the caller decides whether to create it).
int open_in_root(int root_fd, const std::string& path, int extra_flags = 0);
// The directory (created with its parents, mode 0755, when missing).
UniqueFd ensure_dir_in_root(int root_fd, const std::string& path);
// The file (created empty, mode 0644, when missing) to bind a file onto.
UniqueFd ensure_file_in_root(int root_fd, const std::string& path);
// Creates the symlink `path` -> `target` unless `path` already exists.
void ensure_symlink_in_root(int root_fd, const std::string& path, const std::string& target);

// A detached new filesystem: `options` is "key=value,flag,..."; the mount
// flags among them (ro, nosuid, nodev, noexec, noatime, ...) become mount
// attributes, the rest filesystem parameters.
UniqueFd new_filesystem(const std::string& fstype, const std::string& source, const std::string& options);
// A detached copy of the tree at host path `source` (recursive when asked),
// with the mount flags of `options` set on it.
UniqueFd copy_tree(const std::string& source, bool recursive, const std::string& options);
// Attaches a detached mount onto the (resolved) target fd.
void attach(const UniqueFd& mount_fd, const UniqueFd& target_fd, const std::string& target_name);

}  // namespace haco::runtime
