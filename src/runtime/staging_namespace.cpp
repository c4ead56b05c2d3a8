#include "runtime/staging_namespace.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "haco/error.hpp"
#include "runtime/mount_api.hpp"

namespace haco::runtime {
namespace {

// Opened through `proc` (an fd of the host's /proc), so that it works also
// where "/" is a tmpfs or the container's rootfs.
UniqueFd open_own_mount_ns(const UniqueFd& proc) {
  return UniqueFd(static_cast<int>(check_sys(::openat(proc.get(), "thread-self/ns/mnt", O_RDONLY | O_CLOEXEC),
                                             "open", "/proc/thread-self/ns/mnt")));
}

UniqueFd open_proc() {
  return UniqueFd(static_cast<int>(check_sys(::open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC), "open", "/proc")));
}

UniqueFd open_cwd() {
  return UniqueFd(static_cast<int>(check_sys(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC), "open", ".")));
}

// Back to `ns` and `cwd`; a thread that cannot go back must not go on (it
// would mount in the wrong place).
void return_or_abort(const UniqueFd& ns, const UniqueFd& cwd) noexcept {
  if (::setns(ns.get(), CLONE_NEWNS) == 0 && ::fchdir(cwd.get()) == 0) return;
  std::fprintf(stderr, "haco-fleet: cannot return to the caller's mount namespace: %s\n", std::strerror(errno));
  std::abort();
}

// The mount namespace each staging namespace is a copy of: nothing in it
// but an empty read-only tmpfs as its root. A copy of the caller's own
// namespace, made private and then rid of the host's tree, cost as much as
// the host has mounts, and a fleet adds one per instance.
struct BaseNamespace {
  UniqueFd proc;  // the host's /proc
  UniqueFd ns;
};

BaseNamespace make_base_namespace() {
  BaseNamespace base{open_proc(), {}};
  UniqueFd caller_ns = open_own_mount_ns(base.proc);
  UniqueFd caller_cwd = open_cwd();
  check_sys(::unshare(CLONE_NEWNS), "unshare", "base mount namespace");
  try {
    base.ns = open_own_mount_ns(base.proc);
    // The host's tree is detached below; nothing of this reaches the host.
    check_sys(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "mount (make / rprivate)", "/");
    pivot_into(new_filesystem("tmpfs", "haco-staging", "ro,nosuid,nodev,noexec,size=4k,nr_inodes=16,mode=0555"),
               "the base of the staging namespaces");
  } catch (...) {
    return_or_abort(caller_ns, caller_cwd);
    throw;
  }
  return_or_abort(caller_ns, caller_cwd);
  return base;
}

// Made once per process, on first use.
const BaseNamespace& base_namespace() {
  static const BaseNamespace base = with_context("making the base of the staging namespaces", make_base_namespace);
  return base;
}

}  // namespace

StagingNamespace::StagingNamespace() {
  const BaseNamespace& base = base_namespace();
  caller_ns_ = open_own_mount_ns(base.proc);
  caller_cwd_ = open_cwd();
  check_sys(::setns(base.ns.get(), CLONE_NEWNS), "setns", "base mount namespace");
  inside_ = true;
  try {
    check_sys(::unshare(CLONE_NEWNS), "unshare", "staging mount namespace");
    staging_ns_ = open_own_mount_ns(base.proc);
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
