// The fleet supervisor: one detached process per fleet that owns every
// instance's init (the spawners clone with CLONE_PARENT, so the supervisor is
// each container's parent), watches them through pidfds, applies the restart
// policy and serves `up`, `ps` and `down` on a unix socket under the state
// root. Its spawners are single-threaded processes forked before any thread
// exists; each calls runtime::launch for the requests it is sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>


#include "haco/cgroup.hpp"
#include "haco/control_protocol.hpp"
#include "haco/state.hpp"
#include "haco/unique_fd.hpp"

namespace haco::supervisor {

// --restart no | on-failure[:N] | always
struct RestartPolicy {
  enum class Mode { no, on_failure, always };
  Mode mode = Mode::no;
  // Most restarts of one instance; 0 means no limit (on-failure without N, always).
  unsigned max_restarts = 0;
  bool operator==(const RestartPolicy&) const = default;
};
// Throws haco::InputError quoting the text and what is accepted.
RestartPolicy parse_restart_policy(std::string_view text);
std::string format_restart_policy(const RestartPolicy& policy);
// Whether an instance that ended with `exit`, after `restarts` restarts, is
// started again.
bool should_restart(const RestartPolicy& policy, const state::ExitRecord& exit, unsigned restarts);
// Wait before restart number `restarts` + 1: grows from 100 ms to 5 s so a
// crashing init does not spin.
std::chrono::milliseconds restart_delay(unsigned restarts);

// Names the calling process for `ps`: the kernel's comm (PR_SET_NAME, 15
// bytes) and the command line, rewritten in place over the argv area.
void set_process_title(const std::string& title);

struct SupervisorConfig {
  state::FleetPaths paths;
  std::string definition;
  RestartPolicy restart;
  unsigned spawners = 4;
  std::chrono::milliseconds stagger{0};
  std::uint64_t log_max_bytes = 16u << 20;
  // A pipe on which the supervisor says "ready" (or why it could not start).
  int notify_fd = -1;
  // Where its cgroups go: the layout (and, for `up --foreground` under
  // systemd, the caller's delegated cgroup); completed by the supervisor.
  cgroups::FleetCgroup cgroup;
  // `up --foreground`: the supervisor stays a child of `up`, in its cgroup,
  // instead of a detached process or a unit of its own.
  bool foreground = false;
  // The soft RLIMIT_NOFILE the containers' inits start with: the one `up`
  // was started with, before it and the supervisor raised theirs (0: the
  // supervisor's own).
  std::uint64_t container_open_files = 0;
  // The fleet's previous supervisor died: its recorded instances are taken
  // over (haco::supervisor::Supervisor reads fleet.json; the live ones are
  // watched again through a pidfd opened by pid and checked by start time).
  bool adopt = false;
};

// The descriptors a supervisor needs for `instances` instances and
// `spawners` spawners: a pidfd and the read end of an output pipe per
// instance, a socket and a pidfd per spawner, and room for the log writer's
// socket and pidfd, its control sessions, state and log files.
std::uint64_t supervisor_open_files_needed(std::uint64_t instances, unsigned spawners);

// The command line that starts a supervisor: the hidden `supervise`
// subcommand and its options (see cmd_up.cpp), without the program itself.
std::vector<std::string> supervisor_arguments(const SupervisorConfig& config);

// Starts the fleet's supervisor and returns when it listens on its control
// socket: under systemd on a v2 host as the transient unit
// haco-fleet-<fleet>.service (so the fleet outlives the caller's session or
// unit); elsewhere detached (double fork, setsid, SIGHUP ignored, stdio to
// its log, exec of this program); with `foreground` as a child of the caller
// in its own process group. Must be called before the caller starts any
// thread. Throws with the supervisor's own reason when it could not start.
state::ProcessIdentity start_supervisor(const SupervisorConfig& config);

// The supervisor process itself; returns its exit status. It raises its soft
// RLIMIT_NOFILE to the hard limit first (haco/open_files.hpp), and refuses a
// start request whose pidfds and pipes would not fit in it. It forks the
// fleet's log writer (src/supervisor/log_writer.hpp), which writes every
// instance's stdout and stderr to its log and outlives a SIGKILL of the
// supervisor.
int run_supervisor(SupervisorConfig config);

// A connection to a fleet's supervisor. Its requests, events and replies are
// documented in haco/control_protocol.hpp.
class ControlClient {
 public:
  // nullopt when nothing listens on the fleet's socket.
  static std::optional<ControlClient> connect(const state::FleetPaths& paths);

  void send(const protocol::Request& request);
  // The next reply line; throws when the supervisor closed the connection or
  // sent a line that is not a reply.
  protocol::Reply receive();
  // Sends `request` and returns its Done, passing every event before it to
  // `on_event`. A Done with an error is thrown as haco::Error.
  protocol::Done call(const protocol::Request& request,
                      const std::function<void(const protocol::Reply&)>& on_event = {});

  int fd() const { return fd_.get(); }
  UniqueFd release_fd() { return std::move(fd_); }

 private:
  explicit ControlClient(UniqueFd fd) : fd_(std::move(fd)) {}
  void send_line(std::string line);
  std::string receive_line();

  UniqueFd fd_;
  std::string buffer_;
};

// A client of the fleet's supervisor whose replies may take `timeout` plus
// 10 s (SO_RCVTIMEO): a stop waits that long for the instances. nullopt when
// nothing listens.
std::optional<ControlClient> connect_with_deadline(const state::FleetPaths& paths, std::chrono::milliseconds timeout);

// What `down` and a cancelled `up` do to instances: stop them (through the
// supervisor when it answers, else by signal and by cgroup, guarded by pid
// plus start time), kill what is left in their cgroups, remove the cgroups,
// tear down their rootfs. Reports steps through `progress` when set.
struct TeardownOptions {
  std::chrono::milliseconds timeout{10000};
  bool purge = false;
  std::function<void(std::string_view)> progress;
};

// The whole fleet: instances, supervisor, spawners, cgroups, rootfs, state
// (and with purge the instance logs). The caller holds the fleet lock.
// Throws listing what could not be removed; throws haco::InputError before
// touching anything when the fleet's cgroup names another state root
// (other_state_root).
void teardown_fleet(const state::FleetPaths& paths, const TeardownOptions& options);

// Which rootfs trees teardown_instances removes: none (unmounted and kept,
// for a later `down --purge`), those its records created (`up` undoing
// itself: a tree that existed before, `reused`, stays), or all of them with
// the instances' logs (`down --ports R --purge`).
enum class TreePurge { none, created, all };

// Only `records` (what one `up` started, or `down --ports`): stopped and
// forgotten by a running supervisor, their cgroups removed, their rootfs torn
// down as `trees` says, their claims released (registry::release_instances).
// What is kept is remembered (haco/kept_trees.hpp). Only what is proven
// stopped loses its tree and claims.
void teardown_instances(const state::FleetPaths& paths, const std::vector<state::InstanceRecord>& records,
                        const TeardownOptions& options, TreePurge trees);

// Before a new supervisor takes over a fleet whose supervisor is gone (it
// does not answer on its control socket): the recorded supervisor and
// spawners are killed if they still exist (pid plus start time), and every
// recorded instance whose init is not running has its cgroup emptied and
// removed (a process cloned but never recorded dies there) and its rootfs
// unmounted, the tree kept, so that it can start again. The caller holds the
// fleet lock. Throws listing what could not be cleared.
void clear_for_takeover(const state::FleetPaths& paths, const state::FleetState& fleet);

// A fleet without state (lost, or never written) that still has something
// on the host: claims, instance cgroups, a supervisor in its cgroup, a unit.
// Cgroups and a unit whose cgroup names another state root
// (cgroups::kStateRootAttribute) are that root's fleet's, not traces.
bool fleet_left_traces(const state::FleetPaths& paths);

// The fleets found on the host but without state under `state_root`:
// claims without fleet.json, fleets' cgroups, fleets' units. A fleet found
// by cgroup or unit is taken only when its cgroup names `state_root` or no
// state root at all (one started before the mark existed).
std::vector<std::string> fleets_without_state(const std::string& state_root);

// The other state root that the fleet's cgroup (as its state records it, or
// found by its name) names, when it names one that is not
// `paths.state_root`: a fleet of that name under another state root holds
// the cgroups, and nothing of them is this root's to touch. teardown_fleet
// refuses such a fleet with belongs_to_other_root's sentence (InputError).
std::optional<std::string> other_state_root(const state::FleetPaths& paths);
// "fleet 'web' belongs to state root /x (use --root /x)".
std::string belongs_to_other_root(const std::string& fleet, const std::string& other_root);

// What an `up` or a supervisor killed half-way left of the instances for
// which `wanted` says yes and that do not run: a container found in their
// cgroup but not recorded (killed), their cgroups, an overlay still mounted
// (unmounted, the upper layer kept). Recorded instances that run are left
// alone. Instances not recorded are found by cgroup and by the fleet's
// claims. Throws listing what could not be cleared.
void clear_leftovers(const state::FleetPaths& paths, const state::FleetState& fleet,
                     const std::function<bool(const std::string&)>& wanted);

// Memory of the supervisor, its spawners and its log writer (smaps_rollup),
// for `ps --json` and the benchmark.
struct FleetMemory {
  state::MemoryUsage supervisor;
  std::vector<state::MemoryUsage> spawners;
  std::optional<state::MemoryUsage> log_writer;
  state::MemoryUsage total;
};
std::optional<FleetMemory> fleet_memory(const state::FleetState& state);

}  // namespace haco::supervisor
