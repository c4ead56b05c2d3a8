// A command entered into a running container. Three processes:
//
//   exec (host)      prepares everything (seccomp filters compiled, the init's
//                    rlimits read, cgroups opened, the pty), then clones:
//   entering process born in the instance's v2 cgroup (CLONE_INTO_CGROUP),
//                    joins the v1 ones, takes the rlimits, setns(pidfd) into
//                    every namespace of the init at once, and clones with
//                    CLONE_PARENT (a process that enters a pid namespace
//                    stays outside it; its children are inside) the
//   command process  exec's child in the instance's pid namespace: stdio, ids,
//                    capabilities, workdir, no_new_privs, seccomp, execve.
//
// Failures come back over the launch's typed channel (handshake.hpp) with
// their step; about_to_exec then end-of-file means execve succeeded.
#include "haco/write_all.hpp"
#include "haco/enter.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <utility>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/pidfd.hpp"
#include "runtime/caps.hpp"
#include "runtime/exec_plan.hpp"
#include "runtime/file_io.hpp"
#include "runtime/handshake.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/syscalls.hpp"
#include "runtime/terminal.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

// How long exec waits for each setup message of the command process.
constexpr timeval kSetupTimeout{30, 0};

// The signals exec passes on to the command.
constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};

struct CgroupTargets {
  UniqueFd v2_dir;                    // for CLONE_INTO_CGROUP
  std::vector<std::string> v1_dirs;  // joined through cgroup.procs
};

CgroupTargets open_cgroups(const std::vector<std::string>& dirs) {
  if (dirs.empty()) throw Error("the instance has no cgroup on record");
  CgroupTargets targets;
  for (const auto& dir : dirs) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw Error::from_errno("open", dir, errno).with_context("the instance's cgroup");
    struct statfs fs {};
    check_sys(::fstatfs(fd.get(), &fs), "fstatfs", dir);
    if (fs.f_type == CGROUP2_SUPER_MAGIC) {
      if (targets.v2_dir) throw Error(fmt::format("the instance has two cgroup2 directories on record ({})", dir));
      targets.v2_dir = std::move(fd);
    } else if (fs.f_type == CGROUP_SUPER_MAGIC) {
      targets.v1_dirs.push_back(dir);
    } else {
      throw Error(fmt::format("{} (on record as the instance's cgroup) is not a cgroup directory", dir));
    }
  }
  return targets;
}

// The init's rlimits as they are now: its launch set them (and it can only
// have lowered them since, or raised a soft limit within its hard one).
std::vector<std::pair<int, rlimit>> rlimits_of(pid_t pid) {
  std::vector<std::pair<int, rlimit>> limits;
  for (int resource = 0; resource < RLIMIT_NLIMITS; ++resource) {
    rlimit lim{};
    check_sys(::prlimit(pid, static_cast<__rlimit_resource>(resource), nullptr, &lim), "prlimit",
              fmt::format("pid {}", pid));
    limits.emplace_back(resource, lim);
  }
  return limits;
}

// What the two children use, all made before the first clone.
struct Prepared {
  const EnterRequest& request;
  CgroupTargets cgroups;
  std::vector<std::pair<int, rlimit>> limits;
  SeccompPrograms seccomp;
  const ExecPlan& plan;
  int tty_slave = -1;
};

[[noreturn]] void run_command_process(const Prepared& p, const Channel& channel) {
  const EnterRequest& r = p.request;
  const ContainerSpec& c = r.instance.container;
  ChildStep step = ChildStep::stdio;
  try {
    reset_signals();
    if (p.tty_slave >= 0) {
      // A session of its own whose controlling terminal is the slave.
      check_sys(::setsid(), "setsid");
      check_sys(::ioctl(p.tty_slave, TIOCSCTTY, 0), "ioctl TIOCSCTTY", "the pseudo-terminal");
      for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO})
        check_sys(::dup2(p.tty_slave, fd), "dup2", "the pseudo-terminal");
    }
    // Whatever else exec had open stays out of the container.
    check_sys(::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC), "close_range");
    step = ChildStep::become_user;
    // Without a user namespace a root command keeps the ids (and groups) an
    // init gets; with one, host root becomes the requested ids inside.
    if (wants_user_namespace(c) || r.uid != 0 || r.gid != 0) become_user(r.uid, r.gid);
    step = ChildStep::capabilities;
    restrict_capabilities(c, seccomp_needs_sys_admin(c, p.seccomp));
    step = ChildStep::workdir;
    const std::string workdir = r.workdir.empty() ? "/" : r.workdir;
    check_sys(::chdir(workdir.c_str()), "chdir", workdir);
    step = ChildStep::no_new_privs;
    if (c.no_new_privs) check_sys(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl PR_SET_NO_NEW_PRIVS");
    step = ChildStep::seccomp;
    install_seccomp(p.seccomp);
    step = ChildStep::exec;
    channel.send(MessageType::about_to_exec);
    int err = p.plan.exec();
    report_failure(channel, step, Error::from_errno("exec", r.command.front(), err));
    ::_exit(err == ENOENT ? 127 : 126);
  } catch (const Error& e) {
    report_failure(channel, step, e);
  } catch (const std::exception& e) {
    report_failure(channel, step, e.what());
  } catch (...) {
  }
  ::_exit(126);
}

// Writes the command process's pid (a host pid: this process stays in the
// host's pid namespace) to `pid_pipe`, then exits.
[[noreturn]] void run_entering_process(const Prepared& p, const Channel& channel, int pid_pipe) {
  const EnterRequest& r = p.request;
  ChildStep step = ChildStep::join_cgroup;
  try {
    for (const auto& dir : p.cgroups.v1_dirs) write_kernel_file(dir + "/cgroup.procs", std::to_string(::getpid()));
    // While still host root: a hard limit above exec's own needs
    // CAP_SYS_RESOURCE in the host's user namespace.
    step = ChildStep::rlimits;
    for (const auto& [resource, lim] : p.limits)
      check_sys(::setrlimit(static_cast<__rlimit_resource>(resource), &lim), "setrlimit",
                fmt::format("resource {}", resource));
    step = ChildStep::enter_namespaces;
    check_sys(::setns(r.init_pidfd, namespace_flags(r.instance.container)), "setns",
              fmt::format("pidfd of pid {}", r.init_pid));
    step = ChildStep::fork_into_namespaces;
    // clone3 refuses an exit signal with CLONE_PARENT: the command inherits
    // this process's (SIGCHLD), sent to exec.
    sys::CloneArgs args;
    args.flags = CLONE_PARENT;
    long pid = sys::clone3(args);
    if (pid < 0) throw Error::from_errno("clone3", errno);
    if (pid == 0) run_command_process(p, channel);
    auto child = static_cast<pid_t>(pid);
    ::_exit(::write(pid_pipe, &child, sizeof child) == sizeof child ? 0 : 1);
  } catch (const Error& e) {
    report_failure(channel, step, e);
  } catch (const std::exception& e) {
    report_failure(channel, step, e.what());
  } catch (...) {
  }
  ::_exit(1);
}

// The forwarded signals blocked and read from a signalfd while the object
// lives; the old mask comes back on destruction.
class ForwardedSignals {
 public:
  ForwardedSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kForwardedSignals) sigaddset(&set, sig);
    check_sys(::sigprocmask(SIG_BLOCK, &set, &old_), "sigprocmask");
    fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd_) {
      int err = errno;
      ::sigprocmask(SIG_SETMASK, &old_, nullptr);
      throw Error::from_errno("signalfd", err);
    }
  }
  ~ForwardedSignals() {
    fd_.reset();
    ::sigprocmask(SIG_SETMASK, &old_, nullptr);
  }
  ForwardedSignals(const ForwardedSignals&) = delete;
  ForwardedSignals& operator=(const ForwardedSignals&) = delete;
  int fd() const { return fd_.get(); }

 private:
  sigset_t old_{};
  UniqueFd fd_;
};

// The command process, killed and reaped unless it was waited for.
class CommandProcess {
 public:
  explicit CommandProcess(pid_t pid) : pid_(pid), pidfd_(::pidfd_open(pid, 0)) {
    if (!pidfd_) throw Error::from_errno("pidfd_open", fmt::format("pid {}", pid), errno);
  }
  CommandProcess(const CommandProcess&) = delete;
  CommandProcess& operator=(const CommandProcess&) = delete;
  ~CommandProcess() {
    if (reaped_) return;
    ::pidfd_send_signal(pidfd_.get(), SIGKILL, nullptr, 0);
    wait();
  }
  int pidfd() const { return pidfd_.get(); }
  void signal(int sig) const { ::pidfd_send_signal(pidfd_.get(), sig, nullptr, 0); }
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0)
      if (errno != EINTR) throw Error::from_errno("waitpid", fmt::format("pid {}", pid_), errno);
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_;
  UniqueFd pidfd_;
  bool reaped_ = false;
};

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("exit status {}", WEXITSTATUS(status));
}

// Waits for the entering process; returns the command process's pid, or
// throws what went wrong on the way in.
pid_t await_entering_process(pid_t pid, int pid_pipe, const Channel& channel) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw Error::from_errno("waitpid", fmt::format("pid {}", pid), errno);
  pid_t command = -1;
  if (::read(pid_pipe, &command, sizeof command) == sizeof command) return command;
  auto m = channel.receive();
  if (m && m->type == MessageType::child_failed)
    throw error_from_failure(*m).with_context(std::string(child_step_name(m->step)));
  throw Error(fmt::format("the process entering the instance ended without a word ({})", describe_status(status)));
}

// Copies what `from` has now to `to`; false at end-of-file or error (a
// master whose slave is closed everywhere reads EIO).
bool relay(int from, int to) {
  char buf[4096];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  write_all(to, buf, static_cast<std::size_t>(n));
  return true;
}

void pass_on(const ForwardedSignals& signals, const CommandProcess& command, const PseudoTerminal* pty) {
  signalfd_siginfo info{};
  while (::read(signals.fd(), &info, sizeof info) == sizeof info) {
    int sig = static_cast<int>(info.ssi_signo);
    if (pty && sig == SIGWINCH) {
      copy_window_size(STDIN_FILENO, pty->master.get());
      continue;
    }
    // Without a pty the command shares exec's terminal and process group:
    // what that terminal sent (Ctrl-C, a resize) reached it already.
    if (!pty && info.ssi_code == SI_KERNEL) continue;
    command.signal(sig);
  }
}

// A signal ignored while the object lives; the old disposition comes back.
class IgnoredSignal {
 public:
  explicit IgnoredSignal(int sig) : sig_(sig) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    check_sys(::sigaction(sig, &ignore, &old_), "sigaction");
  }
  ~IgnoredSignal() { ::sigaction(sig_, &old_, nullptr); }
  IgnoredSignal(const IgnoredSignal&) = delete;
  IgnoredSignal& operator=(const IgnoredSignal&) = delete;

 private:
  int sig_;
  struct sigaction old_ {};
};

CommandEnd wait_for_command(CommandProcess& command, const ForwardedSignals& signals, PseudoTerminal* pty) {
  // A stdout closed early (`exec -t ... | head`) fails writes with EPIPE
  // instead of killing exec with its terminal raw; the command's output is
  // still read (and dropped), so that it never blocks on a full pty.
  std::optional<IgnoredSignal> no_sigpipe;
  std::optional<RawMode> raw;
  if (pty) {
    no_sigpipe.emplace(SIGPIPE);
    raw.emplace(STDIN_FILENO);
  }
  bool input_open = pty != nullptr;
  bool output_open = pty != nullptr;
  for (;;) {
    pollfd fds[4] = {{signals.fd(), POLLIN, 0}, {command.pidfd(), POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
    if (input_open) fds[2].fd = STDIN_FILENO;
    if (output_open) fds[3].fd = pty->master.get();
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      throw Error::from_errno("poll", errno);
    }
    if (fds[0].revents) pass_on(signals, command, pty);
    if (fds[3].revents && !relay(pty->master.get(), STDOUT_FILENO)) output_open = false;
    if (fds[2].revents && !relay(STDIN_FILENO, pty->master.get())) {
      input_open = false;
      // The end of a piped stdin: end-of-file for the command's terminal.
      const char eof = '\x04';
      if (!::isatty(STDIN_FILENO)) write_all(pty->master.get(), &eof, 1);
    }
    if (fds[1].revents) break;
  }
  // What the command wrote just before it ended.
  if (output_open) {
    ::fcntl(pty->master.get(), F_SETFL, ::fcntl(pty->master.get(), F_GETFL) | O_NONBLOCK);
    char buf[4096];
    for (ssize_t n; (n = ::read(pty->master.get(), buf, sizeof buf)) > 0;)
      write_all(STDOUT_FILENO, buf, static_cast<std::size_t>(n));
  }
  int status = command.wait();
  CommandEnd end;
  if (WIFSIGNALED(status)) {
    end.how = CommandEnd::How::signalled;
    end.signal = WTERMSIG(status);
  } else {
    end.code = WEXITSTATUS(status);
  }
  return end;
}

}  // namespace

int namespace_flags(const ContainerSpec& c) {
  unsigned long flags = 0;
  for (Namespace ns : c.namespaces) flags |= namespace_clone_flag(ns);
  if (wants_user_namespace(c)) flags |= CLONE_NEWUSER;
  return static_cast<int>(flags);
}

CommandEnd enter_and_run(const EnterRequest& r) {
  const ContainerSpec& c = r.instance.container;
  if (r.command.empty()) throw InputError("no command to run");
  const ExecPlan plan(r.command, r.environment);
  Prepared p{r, open_cgroups(r.cgroup_dirs), rlimits_of(r.init_pid), {}, plan};
  // Read from the init only if it was still the init afterwards.
  if (::pidfd_send_signal(r.init_pidfd, 0, nullptr, 0) != 0)
    throw Error(fmt::format("the instance's init (pid {}) ended", r.init_pid));
  p.seccomp = with_context("compiling the seccomp filters", [&] { return seccomp_programs(c); });
  std::optional<PseudoTerminal> pty;
  if (r.tty) {
    pty = open_pseudo_terminal(STDIN_FILENO);
    p.tty_slave = pty->slave.get();
  }

  int sv[2];
  check_sys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair");
  Channel channel{UniqueFd(sv[0])};
  UniqueFd child_end(sv[1]);
  int pp[2];
  check_sys(::pipe2(pp, O_CLOEXEC), "pipe2");
  UniqueFd pid_read(pp[0]), pid_write(pp[1]);
  ForwardedSignals signals;

  sys::CloneArgs args;
  args.exit_signal = SIGCHLD;
  if (p.cgroups.v2_dir) {
    args.flags |= sys::kCloneIntoCgroup;
    args.cgroup = static_cast<std::uint64_t>(p.cgroups.v2_dir.get());
  }
  long pid = sys::clone3(args);
  if (pid < 0) throw Error::from_errno("clone3", "into the instance's cgroup", errno);
  if (pid == 0) {
    ::close(channel.fd());
    ::close(pid_read.get());
    run_entering_process(p, Channel(std::move(child_end)), pid_write.get());
  }
  child_end.reset();
  pid_write.reset();
  if (pty) pty->slave.reset();

  CommandProcess command(await_entering_process(static_cast<pid_t>(pid), pid_read.get(), channel));
  check_sys(::setsockopt(channel.fd(), SOL_SOCKET, SO_RCVTIMEO, &kSetupTimeout, sizeof kSetupTimeout), "setsockopt",
            "SO_RCVTIMEO");
  auto ready = channel.receive();
  if (!ready)
    throw Error(fmt::format("the command's process ended during its setup ({})", describe_status(command.wait())));
  if (ready->type == MessageType::child_failed)
    throw error_from_failure(*ready).with_context(std::string(child_step_name(ready->step)));
  Channel::check(*ready, MessageType::about_to_exec);
  auto after = channel.receive();
  if (!after) return wait_for_command(command, signals, pty ? &*pty : nullptr);
  if (after->type != MessageType::child_failed)
    throw Error(fmt::format("handshake: expected end-of-file after about_to_exec, got {}",
                            message_type_name(after->type)));
  // execve failed: the command did not start; its process exits 126 or 127.
  Error failed = error_from_failure(*after);
  command.wait();
  CommandEnd end;
  end.how = CommandEnd::How::not_started;
  end.exec_errno = failed.sys_errno();
  end.error = failed.what();
  return end;
}

}  // namespace haco::runtime
