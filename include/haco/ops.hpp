// Fleet operations: `up` and `down` as functions over the world they act on
// (the fleet's supervisor, the rootfs engine, readiness probes, the user's
// terminal), each behind an interface. haco-fleet's command line parses
// options, calls these and prints; the decisions (what to start, what to
// undo, when to give up) are unit-tested over fakes (tests/ops).
//
// Real implementations: control_supervisor(), engine_rootfs(),
// observed_readiness() below; the command line gives its own Sink.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "haco/control_protocol.hpp"
#include "haco/dsl.hpp"
#include "haco/fleet.hpp"
#include "haco/latency.hpp"
#include "haco/open_files.hpp"
#include "haco/readiness.hpp"
#include "haco/rootfs.hpp"
#include "haco/spec.hpp"
#include "haco/state.hpp"
#include "haco/supervisor.hpp"

namespace haco::ops {

using observe::Clock;

// Where an operation's progress and messages go (haco-fleet: an
// observe::ProgressReporter on stderr).
class Sink {
 public:
  virtual ~Sink() = default;
  // A line of its own, for information. Before begin(), a plain line on its
  // own.
  virtual void message(std::string_view text) = 0;
  // Something to know even when only warnings are shown (haco-fleet:
  // "haco-fleet: warning: TEXT").
  virtual void warning(std::string_view text) = 0;
  // An error that does not end the operation (haco-fleet: "haco-fleet: TEXT").
  virtual void error(std::string_view text) = 0;
  // The counted part starts: `total` instances (or fleets).
  virtual void begin(std::size_t total) = 0;
  // `instance` completed `step` ("rootfs", "started", "ready", "down"),
  // in `took` when it was timed.
  virtual void step(std::string_view step, std::string_view instance,
                    std::optional<std::chrono::nanoseconds> took) = 0;
  virtual void failed(std::string_view instance, std::string_view reason) = 0;
  // Called every 50 ms while instances start: redraw when due.
  virtual void tick() = 0;
  // Nothing more is drawn after this (messages still are).
  virtual void finish() = 0;
  // The service manager's status line, for `up --foreground` (no-op elsewhere).
  virtual void status(std::string_view text) = 0;
};

// One answer of the supervisor to a start request.
struct StartEvent {
  enum class Kind {
    started,  // the instance runs: process, clone_started, exec_done
    failed,   // it could not start: error
    exited,   // it ended: exit (describe_exit's text), restarting
    done,     // the request is answered; error when it was refused as a whole
    gone,     // the connection ended before `done`
  };
  Kind kind = Kind::done;
  std::string instance;
  state::ProcessIdentity process;
  Clock::time_point clone_started{};
  Clock::time_point exec_done{};
  std::string error;
  std::string exit;
  bool restarting = false;
};

// A start request in flight; its connection ends when this is destroyed.
class StartCall {
 public:
  virtual ~StartCall() = default;
};

// The fleet's supervisor and what the host holds of a fleet, as `up` and
// `down` see them.
class SupervisorClient {
 public:
  virtual ~SupervisorClient() = default;
  // Whether a supervisor answers on the fleet's control socket.
  virtual bool answers(const state::FleetPaths& paths) = 0;
  // Starts the fleet's supervisor and returns once it listens
  // (supervisor::start_supervisor: before the caller starts any thread).
  virtual state::ProcessIdentity launch(const supervisor::SupervisorConfig& config) = 0;
  // Sends one start request for `records`; `on_event` is called on `io`'s
  // thread for every answer, the last one `done` or `gone`. Throws when no
  // supervisor listens.
  virtual std::unique_ptr<StartCall> start(boost::asio::io_context& io, const state::FleetPaths& paths,
                                           const std::vector<state::InstanceRecord>& records,
                                           std::function<void(const StartEvent&)> on_event) = 0;
  // Removes `records` from the fleet: stops them (through the supervisor,
  // which forgets them, when it answers; by signal otherwise), removes their
  // cgroups, tears down their rootfs as `trees` says and releases their
  // claims (supervisor::teardown_instances).
  virtual void remove(const state::FleetPaths& paths, const std::vector<state::InstanceRecord>& records,
                      const supervisor::TeardownOptions& options, supervisor::TreePurge trees) = 0;
  // Stops instances and keeps them in the fleet (state `stopped`, their
  // rootfs and cgroups kept to start again): a StopRequest without forget.
  // Throws when the supervisor does not answer or refuses.
  virtual void stop(const state::FleetPaths& paths, const std::vector<std::string>& instances,
                    std::chrono::milliseconds timeout) = 0;
  // The whole fleet (supervisor::teardown_fleet): the supervisor's shutdown
  // when it answers, signals and cgroups otherwise, then every trace.
  virtual void shutdown(const state::FleetPaths& paths, const supervisor::TeardownOptions& options) = 0;
  // supervisor::clear_for_takeover and supervisor::clear_leftovers.
  virtual void clear_for_takeover(const state::FleetPaths& paths, const state::FleetState& fleet) = 0;
  virtual void clear_leftovers(const state::FleetPaths& paths, const state::FleetState& fleet,
                               const std::function<bool(const std::string&)>& wanted) = 0;
  // supervisor::fleet_left_traces, supervisor::fleets_without_state and
  // supervisor::other_state_root.
  virtual bool left_traces(const state::FleetPaths& paths) = 0;
  virtual std::vector<std::string> fleets_without_state(const std::string& state_root) = 0;
  virtual std::optional<std::string> other_state_root(const state::FleetPaths& paths) = 0;
  // The fleets of the data root with trees kept by a `down` without --purge
  // (haco/kept_trees.hpp).
  virtual std::vector<std::string> fleets_with_kept_trees(const std::string& data_root) = 0;
  // New cgroup settings for instances (`reload`), instance -> settings,
  // through the fleet's supervisor; returns why, for each instance it did
  // not apply them to. Throws when no supervisor answers or it refuses the
  // request as a whole.
  virtual std::map<std::string, std::string> update_limits(
      const state::FleetPaths& paths, const std::map<std::string, std::vector<CgroupSetting>>& limits) = 0;
  // Starts measured by this process, for the instances' records
  // (RecordLatenciesRequest); returns why, for each instance whose phases
  // were not all kept. A supervisor too old to keep them is answered with
  // nothing kept and no error. Throws when no supervisor answers.
  virtual std::map<std::string, std::string> record_latencies(
      const state::FleetPaths& paths, const std::vector<supervisor::protocol::MeasuredStart>& starts) = 0;
};

// Makes the rootfs of instances.
class RootfsPreparer {
 public:
  virtual ~RootfsPreparer() = default;
  // A rootfs is there to use: a directory that is not empty.
  virtual bool exists(const std::string& rootfs) = 0;
  // Tarball images, each decompressed once for all (rootfs::prepare_fleet).
  virtual std::vector<rootfs::PreparedRootfs> prepare_images(const std::vector<rootfs::InstanceRootfs>& images,
                                                             const rootfs::PrepareOptions& options) = 0;
  // A rootfs that a bootstrap left unfinished (its `up` was killed while it
  // ran) is removed; true when there was one.
  virtual bool remove_incomplete(const ContainerSpec& container) = 0;
  // Runs the definition's bootstrap (a shell script, or the block of the
  // definition evaluated again) with `env`; the tree is marked incomplete
  // until it exists and is synced. Throws haco::Error; stops when `cancel`.
  virtual void bootstrap(const InstanceSpec& instance, const dsl::Environment& env,
                         const std::atomic<bool>* cancel) = 0;
};

// Probes started instances until they are ready.
class ReadinessProber {
 public:
  virtual ~ReadinessProber() = default;
  // Probes `instance`, whose init is `pid`, until ready or `deadline`;
  // `callback` reports the outcome on the io_context's thread. Throws
  // haco::Error when the probe cannot start.
  virtual void watch(observe::InstanceId id, const InstanceSpec& instance, pid_t pid, Clock::time_point deadline,
                     observe::ProbeCallback callback) = 0;
  // The watch's callback reports "cancelled".
  virtual void cancel(observe::InstanceId id) = 0;
  virtual void cancel_all() = 0;
};
// The prober of one `up`, on the io_context that follows its launches.
using ProberFactory = std::function<std::unique_ptr<ReadinessProber>(boost::asio::io_context&)>;

// What `up` acts through.
struct UpServices {
  SupervisorClient& supervisor;
  RootfsPreparer& rootfs;
  ProberFactory probers;
  Sink& sink;
};

struct UpRequest {
  std::string state_root;
  std::string data_root;
  std::string fleet;
  std::string definition;                // the .haco file, absolute
  std::vector<InstanceSpec> instances;  // expanded and validated
  fleet::ExpandOptions expansion;        // what they were expanded with
  Clock::time_point expand_started{};
  Clock::time_point expand_ended{};

  supervisor::RestartPolicy restart;
  observe::ReadySpec ready;
  rootfs::Strategy strategy = rootfs::Strategy::overlay;
  bool bootstrap_as_written = false;  // --bootstrap as-written
  unsigned parallel = 4;
  std::chrono::milliseconds stagger{0};
  std::chrono::milliseconds timeout{60000};
  bool no_wait = false;
  bool atomic = false;
  bool foreground = false;
  // The fleet's cgroups go below the caller's own cgroup whatever the
  // layout: a Slurm step's, so that Slurm's signals and cleanup reach every
  // instance (`up --slurm-slice`).
  bool nest_in_caller_cgroup = false;
  bool allow_host_root = false;
  std::uint64_t log_max_bytes = 16u << 20;
  // This process's RLIMIT_NOFILE, raised (raise_open_file_limit): the
  // fleet must fit under it; the containers get back the soft limit found.
  OpenFileLimit open_files;

  // Ctrl-C: set by the caller's handler; `up` stops and removes what it
  // started. `on_locked` runs once the fleet's lock is held (the caller
  // starts catching Ctrl-C there: before, Ctrl-C just ends `up`).
  const std::atomic<bool>* interrupted = nullptr;
  std::function<void()> on_locked;
};

struct UpResult {
  enum class Outcome {
    already_running,  // every instance runs: nothing started
    finished,         // started (some may have failed: failures)
    interrupted,      // Ctrl-C: what this `up` started is removed
  };
  Outcome outcome = Outcome::finished;
  std::optional<state::FleetPaths> paths;
  std::size_t started = 0;                      // instances this `up` started (or tried to)
  std::map<std::string, std::string> failures;  // instance -> printable reason
  bool atomic_rollback = false;                 // --atomic removed the others
  state::ProcessIdentity supervisor;            // the fleet's supervisor (when this `up` started it)
  std::shared_ptr<observe::LatencyRecorder> latency;

  // "3/4 ready, 1 failed"
  std::string status_line() const;
};

// Brings a fleet up: checks the instances, takes the fleet's lock, claims
// what they hold, starts (or takes over) the supervisor, prepares every
// rootfs, starts the missing instances and waits until they are ready or
// failed. A failure before the launches undoes what this `up` did and
// rethrows; with `atomic`, one failed instance removes the others this `up`
// started. Throws haco::InputError on bad input (nothing started).
UpResult up(const UpRequest& request, UpServices services);

// `up --foreground` once the fleet is up: READY=1 to the service manager,
// then wait; `interrupted` (SIGTERM, Ctrl-C) stops the fleet like `down`
// (with `purge`, like `down --purge`); a supervisor that ends on its own
// ends this too. A fleet nested in the caller's own cgroup v2 directory
// (`nest_in_caller_cgroup`) gives that directory back as it found it.
// Returns whether the fleet ended well (taken down, not crashed).
bool stay_in_foreground(const UpResult& result, const std::atomic<bool>& interrupted, SupervisorClient& supervisor,
                        Sink& sink, bool purge = false);

struct DownRequest {
  std::string state_root;
  std::string data_root;
  std::string fleet;  // --name; empty: the only fleet, or all with `all`
  bool all = false;
  // --ports: only these instances leave the fleet (scale down), which keeps
  // running; empty: the whole fleet.
  std::string ports;
  std::chrono::milliseconds timeout{10000};
  bool purge = false;
};

struct DownResult {
  std::vector<std::string> fleets;  // what was taken down (or tried)
  std::size_t failed = 0;
  std::vector<std::string> removed;  // with --ports: the instances removed
};

// Takes fleets down (supervisor::teardown_fleet through `supervisor`), each
// under its lock; an `up` (or `start`, `restart`) holding it is interrupted
// first. A fleet that fails is reported on `sink` and the others still go
// down. A fleet already down whose trees were kept is purged by name with
// `purge` (and by `all` with `purge`). With `ports`, only those instances
// are removed (SupervisorClient::remove) from a fleet whose supervisor runs;
// all of its ports take the whole fleet down. Throws haco::InputError when
// the request names no fleet or port it can find.
DownResult down(const DownRequest& request, SupervisorClient& supervisor, Sink& sink);

// The ENV of an instance's bootstrap script: the one the definition was
// expanded with for its port (fleet::port_environment), plus the
// definition's environ; a bootstrap block sees fleet::port_environment
// itself, so that it evaluates as the expansion did.
dsl::Environment shell_bootstrap_environment(const fleet::ExpandOptions& expansion, const InstanceSpec& instance);

// The real world.
std::unique_ptr<SupervisorClient> control_supervisor();
std::unique_ptr<RootfsPreparer> engine_rootfs(const std::string& data_root);
ProberFactory observed_readiness(observe::ReadySpec ready);

}  // namespace haco::ops
