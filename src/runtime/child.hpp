// The container's side of the launch: runs in the cloned child, from the
// moment clone3 returns 0 until exec. Never returns.
#pragma once

#include "haco/runtime.hpp"
#include "runtime/handshake.hpp"
#include "runtime/seccomp.hpp"

namespace haco::runtime {

struct ChildStdio {
  int stdin_fd = -1;   // daemonized: /dev/null and the log, opened by the parent
  int output_fd = -1;  // (host paths, reachable only before pivot_root)
};

// `seccomp`: the filters compiled by the parent (seccomp_programs), installed
// as the last step before exec.
[[noreturn]] void run_child(const LaunchRequest& request, const Channel& channel, const ChildStdio& stdio,
                           const SeccompPrograms& seccomp);

}  // namespace haco::runtime
