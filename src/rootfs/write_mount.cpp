#include "rootfs/write_mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "haco/error.hpp"

namespace haco::rootfs {
namespace {

int set_read_only(int mount_fd, bool read_only) {
  mount_attr attr{};
  (read_only ? attr.attr_set : attr.attr_clr) = MOUNT_ATTR_RDONLY;
  return mount_setattr(mount_fd, "", AT_EMPTY_PATH, &attr, sizeof attr);
}

}  // namespace

WriteMount::WriteMount(int dir_fd, const std::string& path) : path_(path) {
  mount_.reset(open_tree(dir_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
  if (!mount_) throw Error::from_errno("open_tree(OPEN_TREE_CLONE)", path, errno);
  // The check `seal` relies on, tried while nothing writes yet.
  if (set_read_only(mount_.get(), true) < 0 || set_read_only(mount_.get(), false) < 0)
    throw Error::from_errno("mount_setattr(MOUNT_ATTR_RDONLY)", path, errno);
  root_.reset(openat(mount_.get(), ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root_) throw Error::from_errno("open", path, errno);
}

void WriteMount::seal(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  while (set_read_only(mount_.get(), true) < 0) {
    if (errno != EBUSY) throw Error::from_errno("mount_setattr(MOUNT_ATTR_RDONLY)", path_, errno);
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error(fmt::format("files written in {} are still open for writing after {} ms", path_, timeout.count()));
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
}

}  // namespace haco::rootfs
