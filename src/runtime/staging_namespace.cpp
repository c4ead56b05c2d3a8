#include "runtime/staging_namespace.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "haco/error.hpp"

namespace haco::runtime {
namespace {

UniqueFd open_own_mount_ns() {
  return UniqueFd(static_cast<int>(
      check_sys(::open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC), "open", "/proc/thread-self/ns/mnt")));
}

}  // namespace

StagingNamespace::StagingNamespace() {
  caller_ns_ = open_own_mount_ns();
  caller_cwd_.reset(static_cast<int>(check_sys(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC), "open", ".")));
  check_sys(::unshare(CLONE_NEWNS), "unshare", "staging mount namespace");
  inside_ = true;
  try {
    // Nothing mounted here reaches the host.
    check_sys(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "mount (make / rprivate)", "/");
    staging_ns_ = open_own_mount_ns();
  } catch (...) {
    leave_or_abort();
    throw;
  }
}

StagingNamespace::~StagingNamespace() {
  if (inside_) leave_or_abort();
}

void StagingNamespace::enter() {
  check_sys(::setns(staging_ns_.get(), CLONE_NEWNS), "setns", "staging mount namespace");
  inside_ = true;
}

void StagingNamespace::leave() {
  check_sys(::setns(caller_ns_.get(), CLONE_NEWNS), "setns", "the caller's mount namespace");
  inside_ = false;
  check_sys(::fchdir(caller_cwd_.get()), "fchdir", "the caller's working directory");
}

void StagingNamespace::leave_or_abort() noexcept {
  try {
    leave();
  } catch (const Error& e) {
    std::fprintf(stderr, "haco-fleet: cannot return to the caller's mount namespace: %s\n", e.what());
    std::abort();
  }
}

}  // namespace haco::runtime
