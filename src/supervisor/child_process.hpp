// A process the supervisor forks to work for it (a spawner, the log
// writer): connected to it by a SOCK_SEQPACKET socketpair, watched through a
// pidfd, named by pid and start time.
#pragma once

#include <functional>
#include <string>

#include "haco/state.hpp"
#include "haco/unique_fd.hpp"

namespace haco::supervisor {

struct ChildProcess {
  state::ProcessIdentity process;
  UniqueFd socket;  // the supervisor's end
  UniqueFd pidfd;   // tells the supervisor when the child ends
};

// Forks `what` (named in errors). Both ends of the socket get `socket_buffer`
// bytes of send and receive buffer. In the child only stdio and its end of
// the socket (moved to fd 3, close-on-exec, so that nothing it execs
// inherits it) are kept of the parent; then `child_main(3)` runs, and must
// not return.
ChildProcess fork_child(const std::string& what, int socket_buffer, const std::function<void(int socket)>& child_main);

}  // namespace haco::supervisor
