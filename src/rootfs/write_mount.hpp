// A private mount of one tree being written, used to know that every file
// written into it is fully closed.
//
// The kernel counts on each mount the files open for writing through it, and
// refuses to make a mount read-only while that count is not zero (EBUSY). A
// detached clone of the tree (open_tree(OPEN_TREE_CLONE)) that nothing else
// uses therefore answers exactly "is any file written through it still open
// for writing?" — the same count that makes exec fail with ETXTBSY. Whatever
// the kernel defers (io_uring's release of closed direct descriptors), `seal`
// returns only once it has happened.
#pragma once

#include <chrono>
#include <string>

#include "haco/unique_fd.hpp"

namespace haco::rootfs {

class WriteMount {
 public:
  // A clone of the directory `dir_fd` (`path` names it in errors), checked
  // to accept the read-only switch. Throws haco::Error when the kernel or the
  // caller's privileges do not allow it.
  WriteMount(int dir_fd, const std::string& path);

  // The tree's root directory inside the clone (O_RDONLY | O_DIRECTORY):
  // every write must go through it, or below it, to be counted.
  int root() const { return root_.get(); }

  // Waits until no file is open for writing through the clone, then leaves it
  // read-only. Throws haco::Error if files are still open after `timeout`.
  void seal(std::chrono::milliseconds timeout);

 private:
  std::string path_;
  UniqueFd mount_;
  UniqueFd root_;
};

}  // namespace haco::rootfs
