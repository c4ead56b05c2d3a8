#include "runtime/handshake.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace haco::runtime {
namespace {

template <std::size_t N>
void copy_text(char (&dst)[N], std::string_view src) {
  std::size_t n = std::min(src.size(), N - 1);
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace

std::string_view message_type_name(MessageType t) {
  switch (t) {
    case MessageType::maps_request: return "maps_request";
    case MessageType::maps_written: return "maps_written";
    case MessageType::about_to_exec: return "about_to_exec";
    case MessageType::child_failed: return "child_failed";
  }
  return "unknown";
}

std::string_view child_step_name(ChildStep s) {
  switch (s) {
    case ChildStep::wait_for_maps: return "waiting for uid/gid maps";
    case ChildStep::become_root: return "becoming root in the user namespace";
    case ChildStep::hostname: return "setting the hostname";
    case ChildStep::network: return "bringing up loopback";
    case ChildStep::mounts: return "mounting";
    case ChildStep::pivot_root: return "pivot_root";
    case ChildStep::capabilities: return "dropping capabilities";
    case ChildStep::stdio: return "setting up stdio";
    case ChildStep::workdir: return "changing to the working directory";
    case ChildStep::no_new_privs: return "setting no_new_privs";
    case ChildStep::seccomp: return "installing the seccomp filters";
    case ChildStep::exec: return "starting the init command";
    case ChildStep::join_cgroup: return "joining the instance's cgroups";
    case ChildStep::rlimits: return "taking the init's rlimits";
    case ChildStep::enter_namespaces: return "entering the instance's namespaces";
    case ChildStep::fork_into_namespaces: return "starting a process in the instance's pid namespace";
    case ChildStep::become_user: return "taking the command's uid and gid";
  }
  return "unknown";
}

Message failure_message(ChildStep step, const Error& e) {
  Message m;
  m.type = MessageType::child_failed;
  m.step = step;
  m.err = e.sys_errno();
  copy_text(m.call, e.call());
  copy_text(m.path, e.path());
  copy_text(m.message, e.message());
  std::string context;
  for (const auto& c : e.context()) context.append(context.empty() ? "" : "\n").append(c);
  copy_text(m.context, context);
  return m;
}

Error error_from_failure(const Message& m) {
  Error e = m.err != 0 && m.call[0] != '\0' ? Error::from_errno(m.call, m.path, m.err) : Error(m.message);
  std::string_view context(m.context);
  while (!context.empty()) {
    auto end = context.find('\n');
    e.with_context(std::string(context.substr(0, end)));
    context = end == std::string_view::npos ? std::string_view{} : context.substr(end + 1);
  }
  return e;
}

void Channel::send(const Message& m) const {
  for (;;) {
    if (::send(fd_.get(), &m, sizeof m, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof m)) return;
    if (errno != EINTR) throw Error::from_errno("send", "handshake socket", errno);
  }
}

void Channel::send(MessageType t) const {
  Message m;
  m.type = t;
  send(m);
}

std::optional<Message> Channel::receive() const {
  Message m;
  for (;;) {
    ssize_t n = ::recv(fd_.get(), &m, sizeof m, 0);
    if (n == 0) return std::nullopt;
    if (n == static_cast<ssize_t>(sizeof m)) return m;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      throw Error("the container did not answer on the handshake socket in time");
    if (n < 0) throw Error::from_errno("recv", "handshake socket", errno);
    throw Error(fmt::format("handshake message of {} bytes, expected {}", n, sizeof m));
  }
}

Message Channel::expect(MessageType expected) const {
  auto m = receive();
  if (!m)
    throw Error(fmt::format("handshake: expected {}, the other side closed the socket", message_type_name(expected)));
  return check(*m, expected);
}

Message Channel::check(const Message& m, MessageType expected) {
  if (m.type == expected) return m;
  if (m.type == MessageType::child_failed)
    throw error_from_failure(m).with_context(std::string(child_step_name(m.step)));
  throw Error(fmt::format("handshake: expected {}, got {}", message_type_name(expected), message_type_name(m.type)));
}

}  // namespace haco::runtime
