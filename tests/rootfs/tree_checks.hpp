// What the host sees of an extracted or mounted tree, for the tests.
#pragma once

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "rootfs/file_caps.hpp"

namespace haco::rootfs::testing {

inline struct stat lstat_of(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) < 0) ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
  return st;
}

inline bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::optional<std::string> xattr_of(const std::string& path, const std::string& name) {
  char buf[256];
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(n));
}

inline std::string caps_v2(std::uint32_t permitted) {
  std::string v(XATTR_CAPS_SZ_2, '\0');
  std::uint32_t magic = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  std::memcpy(v.data(), &magic, 4);
  std::memcpy(v.data() + 4, &permitted, 4);
  return v;
}

}  // namespace haco::rootfs::testing
