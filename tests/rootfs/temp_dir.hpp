// A temporary directory for one test: whatever is mounted under it is
// detached and the tree removed when the test ends, pass or fail.
#pragma once

#include <sys/mount.h>

#include <cstdlib>
#include <string>

#include "haco/rootfs.hpp"
#include "rootfs/mounts.hpp"

namespace haco::rootfs::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/haco-rootfs-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    auto mounts = mounts_at_or_under(path_);
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
    remove_tree(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace haco::rootfs::testing
