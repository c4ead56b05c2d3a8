#include "haco/shell_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "haco/error.hpp"
#include "haco/pidfd.hpp"
#include "haco/unique_fd.hpp"

extern char** environ;

namespace haco {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPollMs = 50;

// posix_spawn's attributes and file actions, destroyed with the object.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

}  // namespace

ShellResult run_shell(const std::string& code, const ShellOptions& options) {
  UniqueFd out_read, out_write;
  if (options.capture_stdout) {
    int fds[2];
    check_sys(::pipe2(fds, O_CLOEXEC), "pipe2", "bootstrap command output");
    out_read.reset(fds[0]);
    out_write.reset(fds[1]);
  }
  SpawnSetup setup;
  // Its own process group: a Ctrl-C is handled (and forwarded) here, and a
  // stop reaches the commands the shell started too.
  posix_spawnattr_setpgroup(setup.attr(), 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(setup.attr(), &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(setup.attr(), &none);
  posix_spawnattr_setflags(setup.attr(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawn_file_actions_addopen(setup.actions(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (out_write) posix_spawn_file_actions_adddup2(setup.actions(), out_write.get(), STDOUT_FILENO);

  std::vector<std::string> entries;
  std::vector<char*> envp;
  if (options.environment) {
    entries = *options.environment;
    for (auto& e : entries) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  std::string script = code;
  char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), script.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, "/bin/sh", setup.actions(), setup.attr(), argv,
                         options.environment ? envp.data() : environ);
  if (rc != 0) throw Error::from_errno("posix_spawn", "/bin/sh", rc);
  out_write.reset();

  ShellResult result;
  UniqueFd pidfd(::pidfd_open(pid, 0));
  check_sys(pidfd.get(), "pidfd_open", "bootstrap shell");
  std::optional<Clock::time_point> kill_at;
  bool exited = false;
  auto stop_group = [&](int signal) { ::kill(-pid, signal); };
  while (!exited || out_read) {
    if (options.cancel && options.cancel->load() && !result.cancelled) {
      result.cancelled = true;
      stop_group(SIGINT);
      kill_at = Clock::now() + options.stop_grace;
      if (exited) out_read.reset();
    }
    if (kill_at && Clock::now() >= *kill_at) {
      stop_group(SIGKILL);
      kill_at.reset();
    }
    pollfd fds[2] = {{pidfd.get(), POLLIN, 0}, {out_read ? out_read.get() : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, kPollMs);
    if (n < 0 && errno != EINTR) throw Error::from_errno("poll", "bootstrap shell", errno);
    if (n <= 0) continue;
    if (fds[1].revents) {
      char buffer[4096];
      ssize_t got = ::read(out_read.get(), buffer, sizeof buffer);
      if (got > 0) result.output.append(buffer, static_cast<std::size_t>(got));
      else if (got == 0 || errno != EINTR) out_read.reset();
    }
    if (fds[0].revents && !exited) {
      exited = true;
      if (result.cancelled) {
        // A stopped command leaves nothing running behind it, and what it
        // wrote no longer matters (something outside the group may hold the pipe).
        stop_group(SIGKILL);
        kill_at.reset();
        out_read.reset();
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw Error::from_errno("waitpid", "bootstrap shell", errno);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace haco
