// What /proc/self/mountinfo says about paths we manage.
#pragma once

#include <string>
#include <vector>

namespace haco::rootfs {

// Mount points equal to `path` or below it, deepest last.
std::vector<std::string> mounts_at_or_under(const std::string& path);
bool is_mount_point(const std::string& path);
// The mount point of an overlay whose upper directory is `upper`, or "".
std::string overlay_using_upper(const std::string& upper);
// Removes what is inside `path` (fd-relative, not crossing mounts), keeps `path`.
void remove_tree_contents(const std::string& path);

}  // namespace haco::rootfs
