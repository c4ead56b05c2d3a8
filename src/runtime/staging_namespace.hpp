// The mount namespace in which the host side builds a container's mounts
// (docs/runtime.md, "Mounts"). The container's init is cloned into it and,
// in handshake step 3, copies it into a mount namespace of its own. That
// copy is made for a less privileged user namespace, so the kernel locks
// every mount in it: its flags (ro, nodev, nosuid, noexec) cannot be changed
// and no mount can be taken off what it covers, even by a container root
// with every capability.
#pragma once

#include "haco/unique_fd.hpp"

namespace haco::runtime {

class StagingNamespace {
 public:
  // A copy of the process's base namespace for the calling thread (an empty
  // read-only tmpfs as its root, made on first use; its mounts are private),
  // which stage_rootfs gives the rootfs as its root; the thread is inside
  // until leave().
  StagingNamespace();
  // Back to the caller's namespace when still inside.
  ~StagingNamespace();
  StagingNamespace(const StagingNamespace&) = delete;
  StagingNamespace& operator=(const StagingNamespace&) = delete;

  void enter();
  // Back to the caller's mount namespace and working directory (setns puts
  // the root at the namespace's root: callers must not be chrooted).
  void leave();
  // leave() for destructors: a thread that cannot return to the caller's
  // namespace must not go on (it would mount in the wrong place): abort.
  void leave_or_abort() noexcept;

 private:
  UniqueFd caller_ns_, caller_cwd_, staging_ns_;
  bool inside_ = false;
};

// Inside the staging namespace for a scope.
class InsideStaging {
 public:
  explicit InsideStaging(StagingNamespace& ns) : ns_(ns) { ns_.enter(); }
  ~InsideStaging() { ns_.leave_or_abort(); }
  InsideStaging(const InsideStaging&) = delete;
  InsideStaging& operator=(const InsideStaging&) = delete;

 private:
  StagingNamespace& ns_;
};

}  // namespace haco::runtime
