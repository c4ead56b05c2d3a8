// Paths resolved inside the rootfs and mounts made with the new mount API
// (fsopen/fsconfig/fsmount, open_tree, mount_setattr, move_mount). Every
// target is an fd obtained with openat2(RESOLVE_IN_ROOT) on the rootfs, so a
// symlink in the rootfs cannot send a mount outside of it.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "haco/spec.hpp"
#include "haco/unique_fd.hpp"

namespace haco::runtime {

// O_PATH fd of `path` resolved as if `root_fd` were "/"; -1 with errno when
// it does not exist (the caller decides whether to create it).
int open_in_root(int root_fd, const std::string& path, int extra_flags = 0);
// What is created by the ensure_* calls is owned by `owner` when given (the
// host side creates in the container's tree on behalf of its root), else by
// the caller.
// The directory (created with its parents, mode 0755, when missing).
UniqueFd ensure_dir_in_root(int root_fd, const std::string& path, const std::optional<Owner>& owner = {});
// The file (created empty, mode 0644, when missing) to bind a file onto.
UniqueFd ensure_file_in_root(int root_fd, const std::string& path, const std::optional<Owner>& owner = {});
// Creates the symlink `path` -> `target` unless `path` already exists.
void ensure_symlink_in_root(int root_fd, const std::string& path, const std::string& target,
                            const std::optional<Owner>& owner = {});

// A detached new filesystem: `options` is "key=value,flag,..."; the mount
// flags among them (ro, nosuid, nodev, noexec, noatime, ...) become mount
// attributes, the rest filesystem parameters. `fd_options` are parameters
// given by file descriptor (proc's "pidns").
UniqueFd new_filesystem(const std::string& fstype, const std::string& source, const std::string& options,
                        const std::vector<std::pair<std::string, int>>& fd_options = {});
// A detached copy of the tree at host path `source` (recursive when asked),
// with the mount flags of `options` set on it.
UniqueFd copy_tree(const std::string& source, bool recursive, const std::string& options);
// The same for the mount tree at an O_PATH fd.
UniqueFd copy_tree(const UniqueFd& source, const std::string& name, bool recursive, const std::string& options);
// Attaches a detached mount onto the (resolved) target fd.
void attach(const UniqueFd& mount_fd, const UniqueFd& target_fd, const std::string& target_name);
// The detached mount `tree` becomes the root of the calling thread's mount
// namespace, stacked on the old root, which is then detached; the working
// directory is the new root. `name` names the tree in errors.
void pivot_into(const UniqueFd& tree, const std::string& name);
// The detached mount `tree` is stacked on the root of the calling thread's
// mount namespace and becomes the thread's root and working directory,
// without pivot_root: pivot_root visits every task of the host (to move
// their roots), a cost that grows with the fleet. What lies below the tree
// must hold nothing (the staging namespace's empty read-only tmpfs).
void stack_as_root(const UniqueFd& tree, const std::string& name);
// True when `options` (a mount option string) sets `key` ("size", "uid").
bool has_option(const std::string& options, const std::string& key);

}  // namespace haco::runtime
