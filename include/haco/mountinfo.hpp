// /proc/PID/mountinfo, parsed once for everyone who needs to know what is
// mounted where (the rootfs engine, cgroup discovery).
#pragma once

#include <string>
#include <vector>

namespace haco {

struct MountInfo {
  std::string root;           // the path of the mounted filesystem that is mounted here
  std::string mount_point;    // unescaped
  std::string fstype;         // "overlay", "cgroup2", ...
  std::string source;
  std::string super_options;  // "rw,lowerdir=...,upperdir=..."
};

// Every line of `path`; throws haco::Error when it cannot be read.
std::vector<MountInfo> read_mountinfo(const std::string& path = "/proc/self/mountinfo");

}  // namespace haco
