#include "haco/fd_passing.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "haco/error.hpp"

namespace haco {

void send_with_fd(int socket, std::string_view payload, int fd, const std::string& what) {
  iovec iov{const_cast<char*>(payload.data()), payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  while (::sendmsg(socket, &msg, MSG_NOSIGNAL) < 0)
    if (errno != EINTR) throw Error::from_errno("sendmsg", what, errno);
}

ReceivedMessage receive_with_fd(int socket, std::size_t max_payload, const std::string& what) {
  ReceivedMessage received;
  // The buffer is sized to the message, read first without taking it
  // (MSG_TRUNC gives its whole length): filling a buffer of max_payload for
  // every message of a few hundred bytes cost more than the rest of a
  // container's launch.
  ssize_t length;
  while ((length = ::recv(socket, nullptr, 0, MSG_PEEK | MSG_TRUNC)) < 0)
    if (errno != EINTR) throw Error::from_errno("recvmsg", what, errno);
  // End-of-file; a longer message is taken at max_payload and refused below.
  if (length == 0) return received;
  received.payload.resize(std::min(static_cast<std::size_t>(length), max_payload));
  iovec iov{received.payload.data(), received.payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Room for one descriptor: a sender that attached more loses the others
  // (MSG_CTRUNC), which is reported like a descriptor the kernel dropped.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  while ((n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC)) < 0)
    if (errno != EINTR) throw Error::from_errno("recvmsg", what, errno);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (received.fd) ::close(fd);
      else received.fd.reset(fd);
    }
  }
  received.fd_lost = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (msg.msg_flags & MSG_TRUNC)
    throw Error("a message on " + what + " is larger than " + std::to_string(max_payload) + " bytes");
  received.payload.resize(static_cast<std::size_t>(n));
  return received;
}

}  // namespace haco
