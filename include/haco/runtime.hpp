// The clone engine's contract: start one container from an InstanceSpec whose
// rootfs is already prepared. Implemented in src/runtime/ (one file per
// concern: user, mount, cgroup, caps, handshake, launch).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "haco/spec.hpp"

namespace haco::cgroups {
class InstanceCgroup;
}

namespace haco::runtime {

struct LaunchRequest {
  InstanceSpec instance;
  // Where stdout/stderr of a daemonized init go: `output_fd` when it is open
  // (the write end of the pipe the fleet's log writer reads), else the file
  // `log_path` (appended). A non-daemonized init inherits the caller's.
  std::string log_path;
  int output_fd = -1;
  // The instance's cgroup, already created; the child joins it before exec
  // (CLONE_INTO_CGROUP on v2, cgroup.procs written by the parent on v1).
  const cgroups::InstanceCgroup* cgroup = nullptr;
  // Clone with CLONE_PARENT so that the caller's parent (the fleet
  // supervisor) becomes the container's parent and reaps it.
  bool clone_parent = false;
  // The soft RLIMIT_NOFILE the init starts with (never above the hard
  // limit); 0 leaves the caller's. The supervisor raised its own for the
  // pidfds it holds; the containers get the one `up` was started with.
  std::uint64_t open_files = 0;
};

struct LaunchedContainer {
  pid_t pid = -1;    // host pid of the container's init
  int pidfd = -1;    // owned by the caller
};

// Clones the container, writes its uid/gid maps, waits on the typed
// handshake until the child has exec'd the init command. A failure in the
// child arrives as haco::Error carrying the child's step, errno and message
// ("exec /usr/sbin/httpd: No such file or directory"). Must be called from a
// single-threaded process (a spawner) or a test.
LaunchedContainer launch(const LaunchRequest& request);

}  // namespace haco::runtime
