// The spawner process and its side of the spawner socket.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/fd_passing.hpp"
#include "haco/pidfd.hpp"
#include "haco/runtime.hpp"
#include "haco/supervisor.hpp"
#include "supervisor/spawner.hpp"

namespace haco::supervisor {
namespace {

// Specs are a few KiB; this bounds one message with room to spare.
constexpr std::size_t kMaxMessage = 1 << 20;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr const char* kSocketName = "spawner socket";

// Points stdout and stderr at the instance's output pipe while it is
// launched, so an init that is not daemonized writes there too; restored on
// destruction.
class StdioToPipe {
 public:
  explicit StdioToPipe(int pipe) {
    saved_out_.reset(check_sys(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3), "dup", "stdout"));
    saved_err_.reset(check_sys(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3), "dup", "stderr"));
    check_sys(::dup2(pipe, STDOUT_FILENO), "dup2", "stdout");
    check_sys(::dup2(pipe, STDERR_FILENO), "dup2", "stderr");
  }
  ~StdioToPipe() {
    ::dup2(saved_out_.get(), STDOUT_FILENO);
    ::dup2(saved_err_.get(), STDERR_FILENO);
  }
  StdioToPipe(const StdioToPipe&) = delete;
  StdioToPipe& operator=(const StdioToPipe&) = delete;

 private:
  UniqueFd saved_out_, saved_err_;
};

protocol::SpawnStarted launch_one(const cgroups::FleetCgroup& fleet, std::uint64_t container_open_files,
                                  const protocol::SpawnRequest& request, UniqueFd output, UniqueFd& pidfd) {
  const auto& instance = request.instance;
  const auto& name = instance.container.name;
  if (!output) throw Error("the output pipe of " + name + " did not reach the spawner");
  // Every launch gets fresh cgroups, made with the spec's limits: the
  // directories of a previous run are removed first. Reused, they would keep
  // limits written for another spec, and a v2 cgroup that was ever killed
  // through cgroup.kill SIGKILLs what CLONE_INTO_CGROUP puts in it on recent
  // kernels (seen on 6.18), so a stopped instance could not start again.
  auto cgroup = with_context("cgroup of " + name, [&] {
    if (auto previous = cgroups::InstanceCgroup::open(fleet, name)) {
      if (auto left = previous->processes(); !left.empty())
        throw Error(fmt::format("a previous run of {} still has {} process(es) in its cgroup (pid {})", name,
                                left.size(), left.front()));
      previous->remove();
    }
    return cgroups::InstanceCgroup::create(fleet, name, instance.container.cgroup);
  });
  runtime::LaunchRequest launch{instance, request.log_path, output.get(), cgroup.get(), true, container_open_files};
  std::int64_t clone_started = steady_ns();
  runtime::LaunchedContainer launched;
  {
    StdioToPipe stdio(output.get());
    launched = runtime::launch(launch);
  }
  // The init holds the write end now: the pipe ends when the container does.
  output.reset();
  std::int64_t exec_done = steady_ns();
  pidfd.reset(launched.pidfd);
  if (!pidfd) pidfd.reset(::pidfd_open(launched.pid, 0));
  check_sys(pidfd.get(), "pidfd_open", std::to_string(launched.pid));
  return {launched.pid, cgroup->paths(), clone_started, exec_done};
}

[[noreturn]] void spawner_main(const cgroups::FleetCgroup& fleet, std::uint64_t container_open_files, unsigned index,
                               int socket, pid_t supervisor) {
  set_process_title(fmt::format("haco-fleet: spawner {} {}", fleet.fleet, index));
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != supervisor) ::_exit(1);
  ::signal(SIGPIPE, SIG_IGN);
  for (;;) {
    ReceivedMessage message;
    try {
      // A request carries the write end of the instance's output pipe.
      message = receive_with_fd(socket, kMaxMessage, kSocketName);
    } catch (const Error& e) {
      fmt::print(stderr, "spawner {}: {}\n", index, e.what());
      ::_exit(1);
    }
    if (message.payload.empty()) ::_exit(0);  // the supervisor closed our socket
    UniqueFd pidfd;
    protocol::SpawnReply reply;
    try {
      reply = launch_one(fleet, container_open_files, protocol::decode_spawn_request(message.payload),
                         std::move(message.fd), pidfd);
    } catch (const std::exception& e) {
      reply = protocol::SpawnFailed{e.what()};
    }
    try {
      send_with_fd(socket, protocol::encode(reply), pidfd.get(), kSocketName);
    } catch (const Error& e) {
      fmt::print(stderr, "spawner {}: {}\n", index, e.what());
      ::_exit(1);
    }
  }
}

}  // namespace

SpawnerProcess fork_spawner(const cgroups::FleetCgroup& fleet, std::uint64_t container_open_files, unsigned index) {
  pid_t supervisor = ::getpid();
  return fork_child("spawner", kMaxMessage, [&](int socket) {
    spawner_main(fleet, container_open_files, index, socket, supervisor);
  });
}

void send_spawn_request(int socket, const protocol::SpawnRequest& request, int output) {
  send_with_fd(socket, protocol::encode(request), output, kSocketName);
}

ReceivedSpawnReply receive_spawn_reply(int socket) {
  ReceivedMessage message = receive_with_fd(socket, kMaxMessage, kSocketName);
  if (message.payload.empty()) throw Error("the spawner exited");
  ReceivedSpawnReply reply{protocol::decode_spawn_reply(message.payload), std::move(message.fd), false};
  auto* started = std::get_if<protocol::SpawnStarted>(&reply.message);
  if (!started) return reply;
  // The container runs: a pidfd that did not arrive leaves its pid to act on.
  if (message.fd_lost)
    reply.pidfd_lost = true;
  else if (!reply.pidfd)
    throw Error("the spawner sent no pidfd for pid " + std::to_string(started->pid));
  return reply;
}

}  // namespace haco::supervisor
