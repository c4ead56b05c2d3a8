// What is mounted where, by the kernel's identity of each mount: the mount id
// statx(STATX_MNT_ID) reports for an fd, matched against the id and parent id
// of /proc/self/mountinfo. A path is resolved once, through its own fd, so a
// symlink on the way (a symlinked data root or rootfs base) changes nothing:
// mountinfo names mount points by their resolved paths, never by ours.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "haco/mountinfo.hpp"
#include "haco/unique_fd.hpp"

namespace haco::rootfs {

// One reading of /proc/self/mountinfo for many questions: a fleet's
// teardown asks the same of each of its instances, and a reading per
// question cost as much as the host has mounts (a fleet adds one per
// instance). Only as recent as the reading: a caller keeps it while it
// alone changes the mounts it asks about.
class MountTable {
 public:
  static MountTable read();
  const std::vector<MountInfo>& mounts() const { return mounts_; }
  // The mount with this id when read; nullptr when it was not listed.
  const MountInfo* find(std::uint64_t id) const;

 private:
  std::vector<MountInfo> mounts_;
  std::unordered_map<std::uint64_t, std::size_t> by_id_;
};

// An O_PATH fd of `path`: symlinks on the way are followed, a symlink as its
// last component is not (it is an entry, not what it points to). Invalid
// when the path does not exist; any other failure throws haco::Error.
UniqueFd open_path(const std::string& path);

// The id of the mount `fd` is on (the topmost one at that place), as
// mountinfo's first field names it. `path` names fd in errors.
std::uint64_t mount_id_of(int fd, const std::string& path);
// Whether `fd` is the root of a mount: the kernel's own answer
// (STATX_ATTR_MOUNT_ROOT), which compares mounts, not devices, so a bind
// mount of the same filesystem counts.
bool is_mount_root(int fd, const std::string& path);
// fd's path as the kernel resolved it, the form mountinfo uses.
std::string resolved_path_of(int fd, const std::string& path);

// The mount points (resolved) of the mounts at `path`, the mount `path` is
// on and any stacked under it there, and of those below it reached through
// that mount, parents before children (deepest last). Missing path: none.
std::vector<std::string> mounts_at_or_under(const std::string& path);
std::vector<std::string> mounts_at_or_under(int fd, const std::string& path);
// The same as `table` lists them.
std::vector<std::string> mounts_at_or_under(int fd, const std::string& path, const MountTable& table);
bool is_mount_point(const std::string& path);

// The overlay whose upper directory is `upper`: the same directory (device
// and inode), however either path is spelled. nullopt when there is none.
std::optional<MountInfo> overlay_mount_using_upper(const std::string& upper);
// Its mount point (resolved), or "".
std::string overlay_using_upper(const std::string& upper);
// Whether the mount at `rootfs` is the overlay over `upper`.
bool overlay_mounted_at(const std::string& rootfs, const std::string& upper);
// Detaches the overlay over `upper` mounted at `rootfs`; false when nothing
// is mounted there. Throws, naming what is mounted, when the mount at
// `rootfs` is not that overlay: only a mount proven to be the instance's is
// detached, and it is detached through the fd it was proven on.
bool unmount_overlay(const std::string& rootfs, const std::string& upper);
// The same, with the mount at `rootfs` looked up in `table` when it lists
// that mount (the same id and device), and in a fresh reading otherwise.
bool unmount_overlay(const std::string& rootfs, const std::string& upper, const MountTable& table);

// remove_tree (haco/rootfs.hpp), refusing up front what `table` lists at or
// inside `path`; a mount made after the reading stops the removal where it
// is met (a directory that is another mount is never entered).
void remove_tree(const std::string& path, const MountTable& table);

// Removes what is inside `path` (fd-relative, not crossing mounts), keeps `path`.
void remove_tree_contents(const std::string& path);

}  // namespace haco::rootfs
