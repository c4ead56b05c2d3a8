// The child's setup as a checklist; the step numbers are those of
// handshake.hpp.
#include "runtime/child.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "haco/enter.hpp"
#include "haco/error.hpp"
#include "haco/unique_fd.hpp"
#include "runtime/caps.hpp"
#include "runtime/container_user.hpp"
#include "runtime/exec_plan.hpp"
#include "runtime/mounts.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

void bring_up_loopback() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw Error::from_errno("socket", "AF_INET", errno);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  check_sys(::ioctl(sock.get(), SIOCGIFFLAGS, &ifr), "ioctl SIOCGIFFLAGS", "lo");
  ifr.ifr_flags |= IFF_UP;
  check_sys(::ioctl(sock.get(), SIOCSIFFLAGS, &ifr), "ioctl SIOCSIFFLAGS", "lo");
}

// The soft limit of open files the init starts with: lowering it leaves the
// descriptors already open alone.
void set_open_files_limit(std::uint64_t soft) {
  if (soft == 0) return;
  rlimit lim{};
  check_sys(::getrlimit(RLIMIT_NOFILE, &lim), "getrlimit", "RLIMIT_NOFILE");
  lim.rlim_cur = std::min<rlim_t>(soft, lim.rlim_max);
  check_sys(::setrlimit(RLIMIT_NOFILE, &lim), "setrlimit", "RLIMIT_NOFILE");
}

void setup_stdio(const ContainerSpec& c, const ChildStdio& stdio) {
  if (c.daemonize) {
    check_sys(::setsid(), "setsid");
    check_sys(::dup2(stdio.stdin_fd, STDIN_FILENO), "dup2", "stdin");
    check_sys(::dup2(stdio.output_fd, STDOUT_FILENO), "dup2", "stdout");
    check_sys(::dup2(stdio.output_fd, STDERR_FILENO), "dup2", "stderr");
  }
  // Whatever else the caller had open stays out of the container.
  check_sys(::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC), "close_range");
}

}  // namespace

void run_child(const LaunchRequest& request, const Channel& channel, const ChildStdio& stdio,
               const SeccompPrograms& seccomp) {
  const ContainerSpec& c = request.instance.container;
  ChildStep step = ChildStep::wait_for_maps;
  try {
    reset_signals();
    // Step 1: ask for the maps and wait until the parent wrote them.
    channel.send(MessageType::maps_request);
    channel.expect(MessageType::maps_written);

    // Step 3: the setup, in order.
    step = ChildStep::become_root;
    become_root(c);
    if (c.has_namespace(Namespace::cgroup))
      check_sys(::unshare(CLONE_NEWCGROUP), "unshare", "cgroup namespace");
    step = ChildStep::hostname;
    if (c.has_namespace(Namespace::uts))
      check_sys(::sethostname(c.name.data(), c.name.size()), "sethostname", c.name);
    step = ChildStep::network;
    if (c.has_namespace(Namespace::net)) bring_up_loopback();
    step = ChildStep::mounts;
    // The child starts in the staging namespace, its root already the
    // rootfs; its own copy locks what the host side mounted.
    enter_own_mount_namespace(c);
    step = ChildStep::capabilities;
    restrict_capabilities(c, seccomp_needs_sys_admin(c, seccomp));
    step = ChildStep::stdio;
    setup_stdio(c, stdio);
    set_open_files_limit(request.open_files);
    step = ChildStep::become_user;
    take_container_user(c);
    step = ChildStep::workdir;
    const std::string workdir = c.workdir.empty() ? "/" : c.workdir;
    check_sys(::chdir(workdir.c_str()), "chdir", workdir);
    step = ChildStep::exec;
    if (c.command.empty()) throw Error("the definition has no init command");
    const ExecPlan plan(c.command, init_environment(c));
    step = ChildStep::no_new_privs;
    if (c.no_new_privs) check_sys(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl PR_SET_NO_NEW_PRIVS");
    step = ChildStep::seccomp;
    install_seccomp(seccomp);

    // Step 4: about_to_exec, then exec closes the socket (CLOEXEC) on success.
    step = ChildStep::exec;
    channel.send(MessageType::about_to_exec);
    int err = plan.exec();
    channel.send(failure_message(step, Error::from_errno("exec", c.command.front(), err)));
  } catch (const Error& e) {
    report_failure(channel, step, e);
  } catch (const std::exception& e) {
    report_failure(channel, step, e.what());
  } catch (...) {
    // Nothing may unwind into the caller's code, which this process shares.
  }
  ::_exit(127);
}

}  // namespace haco::runtime
