// Spawners: single-threaded processes forked by the supervisor before it
// starts anything else. Each receives launch requests on a SOCK_SEQPACKET
// socket (with the write end of the instance's output pipe), calls
// runtime::launch with clone_parent (so the container becomes
// the supervisor's child) and answers with the pid, its pidfd (SCM_RIGHTS)
// and the times of clone and exec, or with the error.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "haco/cgroup.hpp"
#include "haco/spec.hpp"
#include "haco/state.hpp"
#include "haco/unique_fd.hpp"
#include "supervisor/child_process.hpp"

namespace haco::supervisor {

using SpawnerProcess = ChildProcess;

// Forks spawner `index` of a fleet whose cgroups are `fleet`. The child
// closes every descriptor but its socket and stdio, dies with its parent,
// and never returns. The inits it starts get `container_open_files` as
// their soft RLIMIT_NOFILE (0: the spawner's own).
SpawnerProcess fork_spawner(const cgroups::FleetCgroup& fleet, std::uint64_t container_open_files, unsigned index);

struct SpawnRequest {
  InstanceSpec instance;
  std::string log_path;
};

struct SpawnReply {
  bool ok = false;
  pid_t pid = -1;
  UniqueFd pidfd;
  // The container was started (pid is valid) but its pidfd could not be
  // received: the receiver's descriptor table or RLIMIT_NOFILE was full.
  bool pidfd_lost = false;
  std::vector<std::string> cgroup_paths;
  // CLOCK_MONOTONIC (steady_clock) instants, comparable across processes.
  std::int64_t clone_started_ns = 0;
  std::int64_t exec_done_ns = 0;
  std::string error;
};

// `output`: the write end of the instance's output pipe, the init's stdout
// and stderr (the spawner closes its copy once the init has it).
void send_spawn_request(int socket, const SpawnRequest& request, int output);
// Reads one reply (the socket is readable). Throws when the spawner is gone
// or sent a started container without its pidfd; a pidfd sent but lost on
// the way in is pidfd_lost, with the pid.
SpawnReply receive_spawn_reply(int socket);

}  // namespace haco::supervisor
