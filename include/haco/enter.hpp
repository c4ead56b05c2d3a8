// Runs a command inside a running container (`haco-fleet exec`): in every
// namespace of its init, in its cgroups, with its root, its environment and
// under the restrictions the init got at launch (runtime.hpp): the same
// capability bounding set, no_new_privs, seccomp filters and rlimits. The
// functions that impose them on the init impose them here; docs/exec.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "haco/spec.hpp"

namespace haco::runtime {

struct EnterRequest {
  // The instance's spec, as its init was launched with it.
  InstanceSpec instance;
  // A pidfd of the instance's init and its pid. The caller checked that the
  // pidfd names the recorded process (pid and start time), so a recycled pid
  // is never entered.
  int init_pidfd = -1;
  pid_t init_pid = -1;
  // The instance's cgroup directories as recorded at launch: a cgroup2
  // directory is joined with clone3(CLONE_INTO_CGROUP), a v1 one through its
  // cgroup.procs.
  std::vector<std::string> cgroup_dirs;
  std::vector<std::string> command;      // argv; a name without '/' is looked up in PATH
  std::vector<std::string> environment;  // "KEY=VALUE", the whole environment
  std::string workdir = "/";             // inside the container
  // Ids inside the container's user namespace (host ids without one).
  uid_t uid = 0;
  gid_t gid = 0;
  // A pseudo-terminal for the command (its controlling terminal); without
  // one the command gets this process's stdin, stdout and stderr.
  bool tty = false;
};

// How the command ended.
struct CommandEnd {
  enum class How {
    exited,       // `code`
    signalled,    // killed by `signal`
    not_started,  // execve failed: `exec_errno`, `error` says which
  };
  How how = How::exited;
  int code = 0;
  int signal = 0;
  int exec_errno = 0;
  std::string error;
};

// The namespaces of `c`'s init, as setns(2) flags: the ones it unshares, and
// a user namespace when it has id mappings.
int namespace_flags(const ContainerSpec& c);

// The environment the init of `c` starts with: the spec's, plus a default
// PATH when it has none.
std::vector<std::string> init_environment(const ContainerSpec& c);

// Enters the instance and runs the command; waits for it, forwarding
// SIGINT, SIGTERM, SIGHUP and SIGWINCH to it (with a tty: relaying the
// terminal and its window size). Throws haco::Error when the instance cannot
// be entered (the step and the reason in the message); a command that could
// not be executed is a CommandEnd, not an error. Call from a single-threaded
// process.
CommandEnd enter_and_run(const EnterRequest& request);

}  // namespace haco::runtime
