// The parent's side of the launch: clone3 and handshake steps 1, 2 and 4
// (handshake.hpp). The child's side is child.cpp.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/pidfd.hpp"
#include "haco/runtime.hpp"
#include "runtime/child.hpp"
#include "runtime/handshake.hpp"
#include "runtime/mounts.hpp"
#include "runtime/staging_namespace.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/syscalls.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

// How long the parent waits for each handshake message before it gives up
// on the child (a mount stuck on a dead filesystem, say).
constexpr timeval kHandshakeTimeout{30, 0};

// Kills (and, when it is ours, reaps) a child whose launch failed.
class ChildGuard {
 public:
  ChildGuard(pid_t pid, int pidfd, bool reapable) : pid_(pid), pidfd_(pidfd), reapable_(reapable) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (!pidfd_) return;
    ::pidfd_send_signal(pidfd_.get(), SIGKILL, nullptr, 0);
    if (reapable_)
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
  }
  LaunchedContainer release() { return {pid_, pidfd_.release()}; }
  // Why the child is gone, when it is ours to reap ("killed by signal 9").
  std::string reap_and_describe() {
    if (!reapable_) return "";
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0)
      if (errno != EINTR) return "";
    reapable_ = false;
    if (WIFSIGNALED(status)) return fmt::format(" (killed by signal {})", WTERMSIG(status));
    return fmt::format(" (exit status {})", WEXITSTATUS(status));
  }

 private:
  pid_t pid_;
  UniqueFd pidfd_;
  bool reapable_;
};

// A handshake message from the child; end-of-file here means it died
// before it could say why.
Message expect_from_child(const Channel& channel, MessageType expected, ChildGuard& guard) {
  auto m = channel.receive();
  if (!m)
    throw Error(fmt::format("the container's init ended during its setup, before {}{}", message_type_name(expected),
                            guard.reap_and_describe()));
  return Channel::check(*m, expected);
}

std::uint64_t clone_flags(const LaunchRequest& r) {
  const ContainerSpec& c = r.instance.container;
  // The child enters its cgroup namespace itself, after the parent put it
  // into the v1 cgroups, so that the namespace is rooted at its own cgroups.
  // It starts in the staging mount namespace and copies it itself (step 3),
  // after the host side mounted its filesystems there.
  std::uint64_t flags = CLONE_PIDFD;
  for (Namespace ns : c.namespaces)
    if (ns != Namespace::cgroup && ns != Namespace::mount) flags |= namespace_clone_flag(ns);
  if (wants_user_namespace(c)) flags |= CLONE_NEWUSER;
  if (r.clone_parent) flags |= CLONE_PARENT;
  if (r.cgroup && r.cgroup->clone_into_fd() >= 0) flags |= sys::kCloneIntoCgroup;
  return flags;
}

ChildStdio open_stdio(const LaunchRequest& r, UniqueFd& stdin_fd, UniqueFd& output_fd) {
  if (!r.instance.container.daemonize) return {};
  if (r.output_fd < 0 && r.log_path.empty()) throw Error("a daemonized container needs a log path or an output pipe");
  stdin_fd.reset(static_cast<int>(check_sys(::open("/dev/null", O_RDONLY | O_CLOEXEC), "open", "/dev/null")));
  if (r.output_fd >= 0) return {stdin_fd.get(), r.output_fd};
  output_fd.reset(static_cast<int>(check_sys(
      ::open(r.log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640), "open", r.log_path)));
  return {stdin_fd.get(), output_fd.get()};
}

LaunchedContainer launch_container(const LaunchRequest& r) {
  const ContainerSpec& c = r.instance.container;
  int sv[2];
  check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair");
  Channel parent_end{UniqueFd(sv[0])};
  UniqueFd child_end(sv[1]);
  UniqueFd stdin_fd, output_fd;
  ChildStdio stdio = open_stdio(r, stdin_fd, output_fd);
  // Compiled here so that the child only installs them.
  SeccompPrograms seccomp = with_context("compiling the seccomp filters", [&] { return seccomp_programs(c); });

  int pidfd = -1;
  sys::CloneArgs args;
  args.flags = clone_flags(r);
  args.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
  // clone3 refuses an exit signal with CLONE_PARENT: the child then inherits
  // the caller's own (SIGCHLD), sent to the caller's parent.
  args.exit_signal = r.clone_parent ? 0 : SIGCHLD;
  if (args.flags & sys::kCloneIntoCgroup) args.cgroup = static_cast<std::uint64_t>(r.cgroup->clone_into_fd());
  // The rootfs becomes the root of a staging mount namespace, cloned into.
  UniqueFd tree = with_context("staging the rootfs", [&] { return rootfs_tree(c); });
  StagingNamespace staging;
  with_context("staging the rootfs", [&] { stage_rootfs(tree, c); });
  long pid = sys::clone3(args);
  if (pid < 0) throw Error::from_errno("clone3", errno);
  if (pid == 0) {
    ::close(parent_end.fd());
    run_child(r, Channel(std::move(child_end)), stdio, seccomp);
  }
  ChildGuard guard(static_cast<pid_t>(pid), pidfd, !r.clone_parent);
  staging.leave();
  child_end.reset();
  check_sys(::setsockopt(parent_end.fd(), SOL_SOCKET, SO_RCVTIMEO, &kHandshakeTimeout, sizeof kHandshakeTimeout),
            "setsockopt", "SO_RCVTIMEO");

  // Step 1: the child exists and asks for its maps.
  expect_from_child(parent_end, MessageType::maps_request, guard);
  // Step 2: maps, v1 cgroups, then the answer.
  with_context("writing the uid/gid maps", [&] { write_id_maps(static_cast<pid_t>(pid), c); });
  if (r.cgroup)
    with_context("joining the cgroup", [&] {
      if (args.flags & sys::kCloneIntoCgroup)
        r.cgroup->add_cloned_process(static_cast<pid_t>(pid));
      else
        r.cgroup->add_process(static_cast<pid_t>(pid));
    });
  with_context("mounting the container's filesystems",
               [&] { mount_container_filesystems(c, static_cast<pid_t>(pid), staging); });
  fault_point("spawner-cloned");
  parent_end.send(MessageType::maps_written);
  // Step 4: about_to_exec, then end-of-file when exec closed the socket.
  expect_from_child(parent_end, MessageType::about_to_exec, guard);
  if (auto after = parent_end.receive()) {
    if (after->type == MessageType::child_failed)
      throw error_from_failure(*after).with_context(std::string(child_step_name(after->step)));
    throw Error(fmt::format("handshake: expected end-of-file after about_to_exec, got {}",
                            message_type_name(after->type)));
  }
  return guard.release();
}

}  // namespace

LaunchedContainer launch(const LaunchRequest& request) {
  return with_context(fmt::format("starting container {}", request.instance.container.name),
                      [&] { return launch_container(request); });
}

}  // namespace haco::runtime
