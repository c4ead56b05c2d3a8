// The per-fleet lock serialising `up` and `down`.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>

#include "haco/error.hpp"
#include "haco/state.hpp"

namespace haco::state {

namespace {

// `down` removes the fleet directory while holding the lock: a waiter then
// holds a lock on a file that no longer has a name, and must start over.
bool still_named(int fd, const std::string& path) {
  struct stat held {}, named {};
  if (::fstat(fd, &held) != 0 || ::stat(path.c_str(), &named) != 0) return false;
  return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

}  // namespace

FleetLock FleetLock::acquire(const FleetPaths& paths, bool wait) {
  for (;;) {
    paths.make_directories();
    UniqueFd fd(::open(paths.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    check_sys(fd.get(), "open", paths.lock_file());
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) throw Error::from_errno("flock", paths.lock_file(), errno);
      if (!wait)
        throw Error("fleet '" + paths.fleet + "' is busy: another `up` or `down` holds " + paths.lock_file());
      while (::flock(fd.get(), LOCK_EX) != 0)
        if (errno != EINTR) throw Error::from_errno("flock", paths.lock_file(), errno);
    }
    if (still_named(fd.get(), paths.lock_file())) return FleetLock(std::move(fd));
  }
}

}  // namespace haco::state
