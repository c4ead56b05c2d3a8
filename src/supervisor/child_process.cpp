#include "supervisor/child_process.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include "haco/error.hpp"
#include "haco/pidfd.hpp"

namespace haco::supervisor {

ChildProcess fork_child(const std::string& what, int socket_buffer, const std::function<void(int socket)>& child_main) {
  int pair[2];
  check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair", what);
  UniqueFd ours(pair[0]), theirs(pair[1]);
  for (int fd : pair) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &socket_buffer, sizeof(socket_buffer));
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &socket_buffer, sizeof(socket_buffer));
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  check_sys(pid, "fork", what);
  if (pid == 0) {
    int socket = theirs.release();
    if (socket != 3) {
      ::dup3(socket, 3, O_CLOEXEC);
      socket = 3;
    }
    ::syscall(SYS_close_range, 4u, ~0u, 0u);
    child_main(socket);
    ::_exit(0);
  }
  theirs.reset();
  ChildProcess child;
  child.socket = std::move(ours);
  child.pidfd.reset(::pidfd_open(pid, 0));
  check_sys(child.pidfd.get(), "pidfd_open", what + " " + std::to_string(pid));
  auto identity = state::identify(pid);
  child.process = identity ? *identity : state::ProcessIdentity{pid, 0};
  return child;
}

}  // namespace haco::supervisor
