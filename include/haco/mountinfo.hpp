// /proc/PID/mountinfo, parsed once for everyone who needs to know what is
// mounted where (the rootfs engine, cgroup discovery).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace haco {

struct MountInfo {
  std::uint64_t id = 0;         // the mount's id, as statx(STATX_MNT_ID) reports it
  std::uint64_t parent_id = 0;  // the mount it is mounted on (itself, or one not listed, at the top)
  unsigned dev_major = 0;       // the device of its filesystem (st_dev of what is in it)
  unsigned dev_minor = 0;
  std::string root;           // the path of the mounted filesystem that is mounted here
  std::string mount_point;    // unescaped
  std::string fstype;         // "overlay", "cgroup2", ...
  std::string source;
  std::string super_options;  // "rw,lowerdir=...,upperdir=..."
};

// Every line of `path`; throws haco::Error when it cannot be read.
std::vector<MountInfo> read_mountinfo(const std::string& path = "/proc/self/mountinfo");

}  // namespace haco
