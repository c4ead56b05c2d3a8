#include "rootfs/mounts.hpp"

#include "haco/mountinfo.hpp"

namespace haco::rootfs {
namespace {

std::string without_trailing_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::vector<std::string> mounts_at_or_under(const std::string& path) {
  const std::string base = without_trailing_slash(path);
  std::vector<std::string> found;
  for (const MountInfo& m : read_mountinfo())
    if (m.mount_point == base || m.mount_point.rfind(base + "/", 0) == 0) found.push_back(m.mount_point);
  return found;
}

std::string overlay_using_upper(const std::string& upper) {
  const std::string needle = "upperdir=" + upper + ",";
  for (const MountInfo& m : read_mountinfo())
    if (m.fstype == "overlay" && (m.super_options + ",").find(needle) != std::string::npos) return m.mount_point;
  return {};
}

bool is_mount_point(const std::string& path) {
  const std::string base = without_trailing_slash(path);
  for (const std::string& m : mounts_at_or_under(base))
    if (m == base) return true;
  return false;
}

}  // namespace haco::rootfs
