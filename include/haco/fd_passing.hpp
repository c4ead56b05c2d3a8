// A message and at most one file descriptor over a unix socket (SCM_RIGHTS),
// for the spawners' pidfds and the proc mount made in a container's pid
// namespace. The receiver learns when the kernel could not give it the
// descriptor that was sent (its descriptor table was full, or its
// RLIMIT_NOFILE reached: the kernel drops it and sets MSG_CTRUNC), instead of
// reading a message that looks as if none was sent.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "haco/unique_fd.hpp"

namespace haco {

// Sends `payload` (not empty) with `fd` attached when fd >= 0, retrying on
// EINTR, without SIGPIPE. Throws haco::Error (sendmsg, `what`).
void send_with_fd(int socket, std::string_view payload, int fd, const std::string& what);

struct ReceivedMessage {
  std::string payload;   // empty at end-of-file
  UniqueFd fd;           // the descriptor that came with it (close-on-exec)
  bool fd_lost = false;  // one was sent but could not be received (MSG_CTRUNC)
};

// Receives one message of at most `max_payload` bytes, retrying on EINTR.
// Throws haco::Error (recvmsg, `what`), also for a longer message.
ReceivedMessage receive_with_fd(int socket, std::size_t max_payload, const std::string& what);

}  // namespace haco
