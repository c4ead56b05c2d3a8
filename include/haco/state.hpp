// Fleet state on disk: one directory per fleet under the state root, holding
// fleet.json (versioned, written atomically: temp + fsync + rename), the
// lock that serialises `up` and `down` of the fleet, the supervisor's control
// socket and its log. Processes are named by pid plus start time, never by
// pid alone.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "haco/cgroup.hpp"
#include "haco/rootfs.hpp"
#include "haco/spec.hpp"
#include "haco/unique_fd.hpp"

namespace haco::state {

inline constexpr int kStateSchemaVersion = 1;

// Where one fleet's files live. The constructor checks the fleet name
// (haco::check_name: haco::InputError for a bad one) and the members cannot
// change afterwards, so no path is ever built from an unchecked name, whether
// it came from a definition's file name, --name or a state directory.
struct FleetPaths {
  FleetPaths(std::string state_root, std::string data_root, std::string fleet);

  const std::string state_root;  // --root
  const std::string data_root;   // --data-root
  const std::string fleet;

  std::string dir() const { return state_root + "/" + fleet; }
  std::string state_file() const { return dir() + "/fleet.json"; }
  std::string lock_file() const { return dir() + "/lock"; }
  // What the fleet holds on the host (names, ports, ids, trees): haco/registry.hpp.
  std::string claims_file() const { return dir() + "/claims.json"; }
  std::string control_socket() const { return dir() + "/control.sock"; }
  std::string supervisor_log() const { return dir() + "/supervisor.log"; }
  // Instance logs are data: they outlive `down` and go with `down --purge`.
  std::string log_dir() const;
  // Checks the instance name too.
  std::string instance_log(const std::string& instance) const;
  // The state root and the fleet's directory, private (layout::make_private_directory).
  void make_directories() const;
};

// A process as the kernel knows it: pid plus start time (field 22 of
// /proc/PID/stat, clock ticks since boot), so a recycled pid is not mistaken
// for the process we started.
struct ProcessIdentity {
  pid_t pid = -1;
  std::uint64_t start_time = 0;
  bool operator==(const ProcessIdentity&) const = default;
};

// Field 22 of /proc/PID/stat; nullopt when the process does not exist.
std::optional<std::uint64_t> read_start_time(pid_t pid);
// The identity of a running process; nullopt when it does not exist.
std::optional<ProcessIdentity> identify(pid_t pid);
// True when `who` still runs (same pid and start time) and is not a zombie.
bool is_alive(const ProcessIdentity& who);

// Whether `signal` sent from outside would be dropped: the process ignores
// it, or it is the init of its own pid namespace (`namespace_init`) and has
// no handler for it (the kernel drops such signals from an ancestor
// namespace; busybox httpd as init is one). A stop timeout is then pointless.
bool signal_would_be_dropped(pid_t pid, int signal, bool namespace_init);

// Resident and proportional set size from /proc/PID/smaps_rollup, in KiB.
struct MemoryUsage {
  std::uint64_t rss_kib = 0;
  std::uint64_t pss_kib = 0;
};
std::optional<MemoryUsage> read_memory(pid_t pid);

// A stable hash of an instance's spec (FNV-1a 64 over its canonical JSON),
// lowercase hex. A definition that changed for an instance changes its hash.
std::string spec_hash(const InstanceSpec& instance);

enum class InstanceState { starting, running, restarting, exited, failed, stopping, stopped };
inline constexpr std::array<InstanceState, 7> kInstanceStates{
    InstanceState::starting, InstanceState::running,  InstanceState::restarting, InstanceState::exited,
    InstanceState::failed,   InstanceState::stopping, InstanceState::stopped};
std::string_view instance_state_name(InstanceState s);
// Running, or on its way in or out (starting, restarting, stopping): not
// stopped, exited or failed.
bool is_active(InstanceState s);
InstanceState instance_state_from_name(std::string_view name);

// How an instance's init last ended.
struct ExitRecord {
  // `code` of an init whose status could not be read (not a child of this
  // supervisor: adopted from a previous one). Counts as a failure.
  static constexpr int kUnknown = -1;
  int code = -1;     // exit status when it exited
  int signal = 0;    // signal number when killed by one
  std::int64_t at_unix_ms = 0;
  bool operator==(const ExitRecord&) const = default;
};
// "exit 0", "exit 3", "signal 9 (Killed)", "ended, exit status unknown".
std::string describe_exit(const ExitRecord& e);

// One end of an instance's init, for its restart history.
struct RecentExit {
  ExitRecord exit;
  bool restarted = false;       // the restart policy started it again
  bool stop_requested = false;  // it ended because it was asked to stop
  bool operator==(const RecentExit&) const = default;
};
// How many ends a record keeps (the oldest go first).
inline constexpr std::size_t kRecentExitsKept = 10;

// What an instance's definition was expanded with beside the caller's
// environment (fleet::ExpandOptions), so that `reload` evaluates it as `up`
// did.
struct RecordedExpansion {
  std::vector<std::string> port_env_names;  // --port-env
  std::string default_pids_max;             // --pids-max
  bool allow_shared_rootfs = false;         // --allow-shared-rootfs
  bool operator==(const RecordedExpansion&) const = default;
};

// How long each start of an instance took, phase by phase
// (observe::phase: expand, rootfs, clone_to_exec, exec_to_ready), kept in its
// record so that the figures outlive the `up`, `start` or `restart` that
// measured them: `metrics` reads them from fleet.json. A phase is a
// histogram over fixed bounds whose counts only grow, so that its sum over a
// fleet is a Prometheus counter.
//
// Upper bounds in seconds, from a millisecond to a minute (clone_to_exec
// takes milliseconds, exec_to_ready of a PHP image seconds).
inline constexpr std::array<double, 15> kLatencyBoundsSeconds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                              0.5,   1,      2.5,   5,    10,    30,    60};
// Phases kept per instance, and the longest phase name: a record stays
// bounded whatever a client sends.
inline constexpr std::size_t kLatencyPhasesKept = 8;
inline constexpr std::size_t kLatencyPhaseNameMax = 32;

struct PhaseLatency {
  // counts[k]: starts that took at most kLatencyBoundsSeconds[k] and more
  // than the bound before it; the last one: more than the largest bound.
  std::array<std::uint64_t, kLatencyBoundsSeconds.size() + 1> counts{};
  double sum_seconds = 0;
  std::uint64_t count() const;
  void add(double seconds);
  PhaseLatency& operator+=(const PhaseLatency& other);
  bool operator==(const PhaseLatency&) const = default;
};

// Whether `phase` may be kept: 1 to kLatencyPhaseNameMax characters of
// [a-z0-9_], not starting with a digit.
bool is_latency_phase_name(std::string_view phase);

struct InstanceRecord {
  InstanceSpec spec;
  std::string spec_hash;
  std::optional<rootfs::PreparedRootfs> rootfs;
  std::string log_path;
  std::vector<std::string> cgroup_paths;
  ProcessIdentity process;          // pid -1 when not running
  InstanceState state = InstanceState::starting;
  std::int64_t started_at_unix_ms = 0;
  unsigned restarts = 0;
  std::optional<ExitRecord> last_exit;
  std::string error;                // why it failed (launch error), empty otherwise
  std::vector<RecentExit> recent_exits;  // oldest first, at most kRecentExitsKept
  // nullopt in a record written before expansions were recorded.
  std::optional<RecordedExpansion> expansion;
  // Phase -> its start latencies; empty in a record written before they
  // were kept.
  std::map<std::string, PhaseLatency> start_latency;

  const std::string& name() const { return spec.container.name; }
};

// Adds one measured start phase to `record`. Refused (false) for a phase
// name is_latency_phase_name refuses, a duration that is negative or not
// finite, or a new phase beyond kLatencyPhasesKept.
bool add_start_latency(InstanceRecord& record, std::string_view phase, double seconds);

struct FleetState {
  std::string fleet;
  std::string definition;           // the .haco file, absolute
  std::string restart_policy;       // as given to --restart
  std::int64_t created_at_unix_ms = 0;
  ProcessIdentity supervisor;
  std::vector<ProcessIdentity> spawners;
  // The fleet's log writer (log_writer.hpp); pid -1 when none was recorded.
  // It outlives a supervisor killed with SIGKILL.
  ProcessIdentity log_writer;
  cgroups::FleetCgroup cgroup;      // where its cgroups are (and its systemd unit)
  std::vector<InstanceRecord> instances;

  InstanceRecord* find(const std::string& instance);
  const InstanceRecord* find(const std::string& instance) const;
};

nlohmann::json to_json(const rootfs::PreparedRootfs& prepared);
rootfs::PreparedRootfs prepared_rootfs_from_json(const nlohmann::json& j);
nlohmann::json to_json(const InstanceRecord& record);
InstanceRecord instance_record_from_json(const nlohmann::json& j);
nlohmann::json to_json(const FleetState& state);
// Throws haco::Error for a missing field, a wrong type or a schema this
// version does not read.
FleetState fleet_state_from_json(const nlohmann::json& j);

// A JSON file; nullopt when it does not exist. Throws haco::Error naming
// the file when it cannot be read or is not JSON.
std::optional<nlohmann::json> read_json_file(const std::string& path);

// fleet.json of `paths`; nullopt when the fleet has no state.
std::optional<FleetState> load_state(const FleetPaths& paths);
void save_state(const FleetPaths& paths, const FleetState& state);

// The text of `record` as fleet.json holds it (indented for its place in
// "instances"). A supervisor keeps it while the record does not change, so
// that writing the state of a large fleet does not serialize every record
// again.
std::string instance_record_text(const InstanceRecord& record);
// save_state with the instances given as their texts (instance_record_text,
// in order); state.instances is not read. The file is the same as
// save_state's for those records.
void save_state(const FleetPaths& paths, const FleetState& state, const std::vector<std::string_view>& instance_texts);

// Names of the fleets that have a state directory under `state_root`; a
// directory whose name is not a valid fleet name is not one of ours.
std::vector<std::string> list_fleets(const std::string& state_root);

// Who holds a fleet's lock: "up" or "down" and the process.
struct LockHolder {
  std::string role;
  ProcessIdentity process;
};

// An exclusive flock on the fleet's lock file, held for the object's life.
// Serialises `up` and `down` of one fleet. The holder writes its role and
// identity into the file, so that a `down` can interrupt an `up` in progress.
class FleetLock {
 public:
  // Creates the fleet directory if needed. With `wait` false, throws when
  // another process holds the lock; with `wait` true, blocks until it is free.
  static FleetLock acquire(const FleetPaths& paths, bool wait, std::string_view role = "up");
  // nullopt when another process holds the lock.
  static std::optional<FleetLock> try_acquire(const FleetPaths& paths, std::string_view role);
  // What the lock file says of its holder (the last one, if none holds it now).
  static std::optional<LockHolder> holder(const FleetPaths& paths);
  FleetLock(FleetLock&&) = default;
  FleetLock& operator=(FleetLock&&) = default;
  // Drops the lock (the file stays; removing the fleet directory removes it).
  void release() { fd_.reset(); }

 private:
  static std::optional<FleetLock> lock(const FleetPaths& paths, std::string_view role, bool blocking);
  explicit FleetLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Milliseconds since the epoch (wall clock, for records a user reads).
std::int64_t unix_now_ms();

}  // namespace haco::state
