// The typed parent/child handshake over a SOCK_SEQPACKET | SOCK_CLOEXEC
// socketpair. The numbered steps below are the only order; launch.cpp (the
// parent) and child.cpp (the child) cite them by number.
//
//   1. child  -> parent  maps_request    the child runs in its new namespaces and waits.
//   2. parent            writes setgroups "deny" (only when it lacks CAP_SETGID), gid_map,
//                        uid_map; writes the pid into the v1 cgroups; mounts the
//                        container's filesystems in the staging namespace (mounts.hpp).
//      parent -> child   maps_written
//   3. child             setresgid/setresuid 0, cgroup namespace, hostname, loopback,
//                        its own mount namespace, capabilities, stdio, workdir,
//                        no_new_privs (when asked), seccomp filters (compiled by the
//                        parent before clone; last, so that they see only the calls
//                        below).
//      child  -> parent  about_to_exec
//   4. child             execve: the socket closes on exec, and the parent takes
//                        end-of-file after about_to_exec as success.
//   At any step the child may send child_failed (step, errno, message) instead
//   and exit; the parent turns it into haco::Error.
// `exec` (enter.cpp) speaks the same messages with steps of its own: its
// entering and command processes send child_failed, the command process
// about_to_exec, and its execve closes the socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"

namespace haco::runtime {

enum class MessageType : std::uint32_t { maps_request = 1, maps_written = 2, about_to_exec = 3, child_failed = 4 };

// Where in its setup the child was (reported with child_failed).
enum class ChildStep : std::uint32_t {
  wait_for_maps,
  become_root,
  hostname,
  network,
  mounts,
  pivot_root,
  capabilities,
  stdio,
  workdir,
  no_new_privs,
  seccomp,
  exec,
  // A command entered into a running container (enter.hpp).
  join_cgroup,
  rlimits,
  enter_namespaces,
  fork_into_namespaces,
  become_user,
};

std::string_view message_type_name(MessageType t);
std::string_view child_step_name(ChildStep s);

struct Message {
  MessageType type{};
  ChildStep step{};
  std::int32_t err = 0;
  char call[64]{};
  char path[1024]{};
  char message[1024]{};
  char context[2048]{};  // the child's layers of context, outermost last, '\n'-separated
};

// Turns a haco::Error into a child_failed message, and back.
Message failure_message(ChildStep step, const Error& e);
Error error_from_failure(const Message& m);

class Channel {
 public:
  explicit Channel(UniqueFd fd) : fd_(std::move(fd)) {}
  void send(const Message& m) const;
  void send(MessageType t) const;
  // nullopt at end-of-file (the other side exec'd or exited).
  std::optional<Message> receive() const;
  // Receives and checks the type: a child_failed becomes its error, another
  // type an error naming what was expected and what arrived.
  Message expect(MessageType expected) const;
  // The type check of expect() on a message already received.
  static Message check(const Message& m, MessageType expected);
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

// A child's failure sent to its parent, best effort: the parent may be gone,
// and nothing may escape the child.
template <typename What>
void report_failure(const Channel& channel, ChildStep step, const What& what) noexcept {
  try {
    if constexpr (std::is_same_v<What, Error>)
      channel.send(failure_message(step, what));
    else
      channel.send(failure_message(step, Error(what)));
  } catch (...) {
  }
}

}  // namespace haco::runtime
