// Starting a fleet's supervisor from `up`: detached from the caller's
// session and terminal, running this same program's `supervise` subcommand.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "haco/error.hpp"
#include "haco/run_program.hpp"
#include "haco/supervisor.hpp"
#include "haco/systemd_unit.hpp"

namespace haco::supervisor {

std::vector<std::string> supervisor_arguments(const SupervisorConfig& config) {
  return {"--root",        config.paths.state_root,
          "--data-root",   config.paths.data_root,
          "supervise",     "--name",
          config.paths.fleet,
          "--definition",  config.definition,
          "--restart",     format_restart_policy(config.restart),
          "--spawners",    std::to_string(config.spawners),
          "--stagger",     std::to_string(config.stagger.count()),
          "--log-max-bytes", std::to_string(config.log_max_bytes),
          "--notify-fd",   std::to_string(config.notify_fd),
          "--cgroup-layout", std::string(cgroups::layout_name(config.cgroup.layout)),
          "--cgroup-dir",  config.cgroup.dir,
          "--cgroup-unit", config.cgroup.unit,
          "--container-nofile", std::to_string(config.container_open_files),
          "--adopt",       config.adopt ? "1" : "0"};
}

namespace {

// fork() copies only the calling thread: with other threads alive, a lock
// one of them held would stay locked forever in the child.
unsigned thread_count() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Threads:", 0) == 0) return static_cast<unsigned>(std::stoul(line.substr(8)));
  return 0;
}

// The supervisor as a unit of its own: systemd-run returns once it said
// READY=1 (the supervisor does when it listens), or with why it failed.
void start_as_unit(const SupervisorConfig& config) {
  SupervisorConfig unit_config = config;
  unit_config.notify_fd = -1;
  std::vector<std::string> command = supervisor_arguments(unit_config);
  command.insert(command.begin(), own_program_path());
  config.paths.make_directories();
  // systemd appends to the log as it finds it: made private here first.
  std::string log = config.paths.supervisor_log();
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  check_sys(log_fd.get(), "open", log);
  check_sys(::fchmod(log_fd.get(), 0600), "fchmod", log);
  systemd::start_transient_service({config.cgroup.unit, "haco-fleet fleet " + config.paths.fleet, command,
                                    config.paths.supervisor_log()});
}

state::ProcessIdentity connect_to_started(const SupervisorConfig& config) {
  auto client = ControlClient::connect(config.paths);
  if (!client) throw Error("the supervisor of fleet '" + config.paths.fleet + "' is not listening");
  auto pong = client->call(protocol::PingRequest{});
  if (!pong.pid) throw Error("the supervisor of fleet '" + config.paths.fleet + "' did not say its pid");
  auto identity = state::identify(*pong.pid);
  if (!identity) throw Error("the supervisor of fleet '" + config.paths.fleet + "' exited right after it started");
  return *identity;
}

}  // namespace

state::ProcessIdentity start_supervisor(const SupervisorConfig& config) {
  if (unsigned threads = thread_count(); threads > 1)
    throw Error("the supervisor must be started before any thread (this process has " + std::to_string(threads) +
                ")");
  // A supervisor taking over a fleet whose unit still runs (its instances
  // keep it active) joins that unit's cgroup instead of starting another.
  const bool into_running_unit = config.adopt && config.cgroup.layout == cgroups::Layout::v2_systemd &&
                                 !config.cgroup.dir.empty();
  if (config.cgroup.layout == cgroups::Layout::v2_systemd && !config.foreground && !into_running_unit) {
    start_as_unit(config);
    return connect_to_started(config);
  }
  int pipe_fds[2];
  check_sys(::pipe2(pipe_fds, O_CLOEXEC), "pipe2");
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);

  // Everything the children need is built before fork.
  SupervisorConfig child_config = config;
  child_config.notify_fd = write_end.get();
  std::vector<std::string> args = supervisor_arguments(child_config);
  args.insert(args.begin(), "haco-fleet: supervisor " + config.paths.fleet);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log = config.paths.supervisor_log();
  config.paths.make_directories();

  std::fflush(nullptr);
  pid_t middle = ::fork();
  check_sys(middle, "fork", "supervisor");
  if (middle == 0) {
    if (config.foreground) {
      // A child of `up`, out of the terminal's process group: Ctrl-C goes to
      // `up`, which stops the fleet in order.
      ::setpgid(0, 0);
    } else {
      // A new session without a terminal; the second fork makes the
      // supervisor a child of init, not of `up`, and unable to acquire a
      // terminal again.
      ::setsid();
      if (::fork() != 0) ::_exit(0);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGHUP, SIG_IGN);
    int null = ::open("/dev/null", O_RDONLY);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null < 0 || out < 0 || ::fchmod(out, 0600) != 0) ::_exit(127);
    ::dup2(null, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::fcntl(child_config.notify_fd, F_SETFD, 0);
    ::execv("/proc/self/exe", argv.data());
    std::string message = std::string("error: exec /proc/self/exe: ") + std::strerror(errno) + "\n";
    [[maybe_unused]] auto n = ::write(child_config.notify_fd, message.data(), message.size());
    ::_exit(127);
  }
  write_end.reset();
  int status = 0;
  if (!config.foreground)
    while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
    }

  std::string answer;
  char chunk[512];
  for (;;) {
    ssize_t n = ::read(read_end.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(chunk, static_cast<std::size_t>(n));
  }
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  if (answer != "ready") {
    if (answer.rfind("error: ", 0) == 0) answer.erase(0, 7);
    throw Error("starting the supervisor of fleet '" + config.paths.fleet + "': " +
                (answer.empty() ? "it exited before it was ready (see " + log + ")" : answer));
  }
  return connect_to_started(config);
}

}  // namespace haco::supervisor
