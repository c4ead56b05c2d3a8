#include "haco/run_program.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"

extern char** environ;

namespace haco {
namespace {

struct Pipe {
  UniqueFd read_end, write_end;
  Pipe() {
    int fds[2];
    check_sys(::pipe2(fds, O_CLOEXEC), "pipe2");
    read_end = UniqueFd(fds[0]);
    write_end = UniqueFd(fds[1]);
  }
};

void trim_newlines(std::string& text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
}

// Reads both pipes until both are closed (a program that fills one while we
// wait on the other must not block).
void drain(UniqueFd& out_fd, std::string& out, UniqueFd& err_fd, std::string& err) {
  char chunk[4096];
  while (out_fd || err_fd) {
    pollfd fds[2];
    nfds_t n = 0;
    UniqueFd* which[2];
    std::string* into[2];
    if (out_fd) fds[n] = {out_fd.get(), POLLIN, 0}, which[n] = &out_fd, into[n++] = &out;
    if (err_fd) fds[n] = {err_fd.get(), POLLIN, 0}, which[n] = &err_fd, into[n++] = &err;
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      throw Error::from_errno("poll", "a program's output", errno);
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      ssize_t got = ::read(fds[i].fd, chunk, sizeof(chunk));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        which[i]->reset();
      else
        into[i]->append(chunk, static_cast<std::size_t>(got));
    }
  }
}

}  // namespace

SpawnedProgram spawn_program(const std::vector<std::string>& argv, bool merge_stderr) {
  if (argv.empty()) throw Error("spawn_program: no program");
  Pipe out, err;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, merge_stderr ? out.write_end.get() : err.write_end.get(),
                                   STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  SpawnedProgram spawned;
  int rc = ::posix_spawnp(&spawned.pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error::from_errno("posix_spawn", argv[0], rc);
  spawned.output = std::move(out.read_end);
  if (!merge_stderr) spawned.errors = std::move(err.read_end);
  return spawned;
}

ProgramResult run_program(const std::vector<std::string>& argv, bool merge_stderr) {
  SpawnedProgram spawned = spawn_program(argv, merge_stderr);
  ProgramResult result;
  drain(spawned.output, result.output, spawned.errors, result.errors);
  int status = 0;
  while (::waitpid(spawned.pid, &status, 0) < 0)
    if (errno != EINTR) throw Error::from_errno("waitpid", argv[0], errno);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  trim_newlines(result.output);
  trim_newlines(result.errors);
  return result;
}

std::string own_program_path() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error::from_errno("readlink", "/proc/self/exe", ec.value());
  return path;
}

}  // namespace haco
