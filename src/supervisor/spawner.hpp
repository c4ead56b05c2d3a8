// Spawners: single-threaded processes forked by the supervisor before it
// starts anything else. Each receives launch requests on a SOCK_SEQPACKET
// socket (with the write end of the instance's output pipe), calls
// runtime::launch with clone_parent (so the container becomes
// the supervisor's child) and answers with the pid, its pidfd (SCM_RIGHTS)
// and the times of clone and exec, or with the error (the messages are in
// haco/control_protocol.hpp).
#pragma once

#include <cstdint>

#include "haco/cgroup.hpp"
#include "haco/control_protocol.hpp"
#include "haco/unique_fd.hpp"
#include "supervisor/child_process.hpp"

namespace haco::supervisor {

using SpawnerProcess = ChildProcess;

// Forks spawner `index` of a fleet whose cgroups are `fleet`. The child
// closes every descriptor but its socket and stdio, dies with its parent,
// and never returns. The inits it starts get `container_open_files` as
// their soft RLIMIT_NOFILE (0: the spawner's own).
SpawnerProcess fork_spawner(const cgroups::FleetCgroup& fleet, std::uint64_t container_open_files, unsigned index);

// A reply as it arrived: the message, and the init's pidfd that came with a
// SpawnStarted.
struct ReceivedSpawnReply {
  protocol::SpawnReply message;
  UniqueFd pidfd;
  // The container was started (its pid is in the message) but its pidfd
  // could not be received: the receiver's descriptor table or RLIMIT_NOFILE
  // was full.
  bool pidfd_lost = false;
};

// `output`: the write end of the instance's output pipe, the init's stdout
// and stderr (the spawner closes its copy once the init has it).
void send_spawn_request(int socket, const protocol::SpawnRequest& request, int output);
// Reads one reply (the socket is readable). Throws when the spawner is gone
// or sent a started container without its pidfd; a pidfd sent but lost on
// the way in is pidfd_lost, with the pid.
ReceivedSpawnReply receive_spawn_reply(int socket);

}  // namespace haco::supervisor
