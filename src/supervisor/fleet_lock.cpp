// The per-fleet lock serialising `up` and `down`.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <unistd.h>

#include <cerrno>
#include <fstream>

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

// "<role> <pid> <start time>" for whoever wants to know who holds it.
void write_holder(int fd, std::string_view role, const std::string& path) {
  auto self = identify(::getpid());
  std::string line = std::string(role) + " " + std::to_string(::getpid()) + " " +
                     std::to_string(self ? self->start_time : 0) + "\n";
  check_sys(::ftruncate(fd, 0), "ftruncate", path);
  check_sys(::pwrite(fd, line.data(), line.size(), 0), "pwrite", path);
}

}  // namespace

std::optional<LockHolder> FleetLock::holder(const FleetPaths& paths) {
  std::ifstream in(paths.lock_file());
  LockHolder holder;
  if (!(in >> holder.role >> holder.process.pid >> holder.process.start_time)) return std::nullopt;
  return holder;
}

// One attempt per name of the lock file: nullopt when `blocking` is false
// and another process holds it.
std::optional<FleetLock> FleetLock::lock(const FleetPaths& paths, std::string_view role, bool blocking) {
  for (;;) {
    paths.make_directories();
    UniqueFd fd(::open(paths.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    check_sys(fd.get(), "open", paths.lock_file());
    while (::flock(fd.get(), LOCK_EX | (blocking ? 0 : LOCK_NB)) != 0) {
      if (!blocking && errno == EWOULDBLOCK) return std::nullopt;
      if (errno != EINTR) throw Error::from_errno("flock", paths.lock_file(), errno);
    }
    if (still_named(fd.get(), paths.lock_file())) {
      write_holder(fd.get(), role, paths.lock_file());
      return FleetLock(std::move(fd));
    }
  }
}

std::optional<FleetLock> FleetLock::try_acquire(const FleetPaths& paths, std::string_view role) {
  return lock(paths, role, false);
}

FleetLock FleetLock::acquire(const FleetPaths& paths, bool wait, std::string_view role) {
  if (auto held = lock(paths, role, false)) return std::move(*held);
  if (!wait) throw Error("fleet '" + paths.fleet + "' is busy: another `up` or `down` holds " + paths.lock_file());
  return std::move(*lock(paths, role, true));
}

}  // namespace haco::state
