// The supervisor process: the wiring between the fleet machine (its
// decisions), the spawner pool, the control server, the log writer, the
// pidfd watches, timers and the state file, all on one single-threaded
// io_context.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <variant>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/control_protocol.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/open_files.hpp"
#include "haco/overloaded.hpp"
#include "haco/pidfd.hpp"
#include "haco/supervisor.hpp"
#include "haco/systemd_unit.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/fleet_machine.hpp"
#include "supervisor/instance_log.hpp"
#include "supervisor/log_writer.hpp"
#include "supervisor/spawner.hpp"
#include "supervisor/spawner_pool.hpp"
#include "supervisor/supervisor_log.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace haco::supervisor {
namespace {

namespace asio = boost::asio;

// A change of state is written within this delay, or, when fleet.json
// takes long to write (its size grows with the fleet, and fsync waits on
// the disk), after kStateWriteSpacing times as long as the last write took:
// the loop that answers the spawners spends at most a tenth of its time
// writing state.
constexpr auto kStateWriteDelay = std::chrono::milliseconds(100);
constexpr int kStateWriteSpacing = 9;
constexpr auto kKillWait = std::chrono::milliseconds(3000);
// How long an instance's "exited" event waits for the log writer to have
// written all the instance wrote (a process it left behind may hold the pipe).
constexpr auto kOutputDrainWait = std::chrono::milliseconds(2000);
// A log writer that ended sooner than this after it started is replaced
// only after this long, so that one that cannot run does not spin.
constexpr auto kLogWriterRestartPause = std::chrono::seconds(1);
// Descriptors a supervisor holds per instance: its init's pidfd and the read
// end of its output pipe (kept until the log writer drained it).
constexpr std::uint64_t kOpenFilesPerInstance = 2;
// Per spawner its socket and pidfd.
constexpr std::uint64_t kOpenFilesPerSpawner = 2;
// Then the log writer's socket and pidfd, the two ends of a pipe being made,
// stdio, the listener, the io_context, signals, timers, control sessions and
// what a state write or a cgroup kill opens for a moment.
constexpr std::uint64_t kOpenFilesBesideInstances = 64;

// What the supervisor holds for an instance beside its record (which is the
// fleet machine's).
struct InstanceWatch {
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;  // while the init runs
  std::unique_ptr<asio::steady_timer> restart_timer;
  std::uint64_t output_pipe = 0;  // id of the last launch's output pipe
  // Started by a previous supervisor: not our child, so its exit status
  // cannot be read (its new parent reaps it).
  bool adopted = false;
};

// An event for an `up` that waits until the launch's output is in its log.
struct HeldEvent {
  std::weak_ptr<ControlSession> session;
  protocol::ExitedEvent event;
};

// One launch's output pipe: the read end handed to the log writer, kept here
// until the writer says it is drained, so that a new writer can be given it.
struct OutputPipe {
  protocol::LogPipe about;
  UniqueFd read_end;
  std::vector<HeldEvent> held;
  std::unique_ptr<asio::steady_timer> held_deadline;
};

struct LogWriter {
  state::ProcessIdentity process;
  std::unique_ptr<asio::posix::stream_descriptor> socket;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;
  std::chrono::steady_clock::time_point started;
};

// The wiring: the fleet machine decides, this class carries its effects out
// on one io_context (spawner pool, control server, pidfd watches, timers,
// the log writer and fleet.json).
class Supervisor {
 public:
  Supervisor(SupervisorConfig config, UniqueFd listener, std::vector<SpawnerProcess> spawners,
             LogWriterProcess log_writer)
      : config_(std::move(config)),
        machine_({config_.restart, std::max(1u, config_.spawners), config_.stagger}, clock_),
        server_(io_, std::move(listener),
                [this](const std::shared_ptr<ControlSession>& session, protocol::Request request) {
                  handle_request(session, std::move(request));
                },
                [](const std::string& line) { log_line(line); }),
        pool_(io_, std::move(spawners), config_.cgroup, config_.container_open_files,
              {[this](unsigned spawner, ReceivedSpawnReply reply) { on_spawner_reply(spawner, std::move(reply)); },
               [this](unsigned spawner, const std::string& error) { apply(machine_.spawner_lost(spawner, error)); },
               [this](unsigned spawner) { on_spawner_exit(spawner); }}),
        signals_(io_, SIGTERM, SIGINT),
        state_timer_(io_),
        log_writer_timer_(io_),
        stagger_timer_(io_) {
    state_.fleet = config_.paths.fleet;
    state_.definition = config_.definition;
    state_.restart_policy = format_restart_policy(config_.restart);
    state_.created_at_unix_ms = state::unix_now_ms();
    state_.supervisor = *state::identify(::getpid());
    state_.cgroup = config_.cgroup;
    adopt_log_writer(std::move(log_writer));
    if (config_.adopt) adopt_recorded_instances();
    state_.spawners = pool_.processes();
    save_state_now();
  }

  int run() {
    server_.start();
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      log_line(fmt::format("received signal {}: stopping the fleet", signal));
      apply(machine_.stop(new_operation(nullptr), machine_.names(), std::chrono::milliseconds(10000), false, true));
    });
    io_.run();
    return 0;
  }

 private:
  void handle_request(const std::shared_ptr<ControlSession>& session, protocol::Request request) {
    try {
      if (auto* start = std::get_if<protocol::StartRequest>(&request)) {
        auto operation = new_operation(session);
        auto problem = machine_.shutting_down() ? std::nullopt : open_files_problem(start->instances.size());
        apply(problem ? machine_.refuse_start(operation, start->instances, *problem)
                      : machine_.start(operation, std::move(start->instances)));
      } else if (auto* stop = std::get_if<protocol::StopRequest>(&request)) {
        apply(machine_.stop(new_operation(session), stop->instances, stop->timeout, stop->forget, false));
      } else if (auto* shutdown = std::get_if<protocol::ShutdownRequest>(&request)) {
        apply(machine_.stop(new_operation(session), machine_.names(), shutdown->timeout, false, true));
      } else if (auto* update = std::get_if<protocol::UpdateLimitsRequest>(&request)) {
        apply(machine_.update_limits(new_operation(session), update->instances));
      } else if (auto* latencies = std::get_if<protocol::RecordLatenciesRequest>(&request)) {
        apply(machine_.record_latencies(new_operation(session), latencies->starts));
      } else if (std::holds_alternative<protocol::PingRequest>(request)) {
        session->send(protocol::Done{std::nullopt, ::getpid()});
      }
    } catch (const std::exception& e) {
      session->send(protocol::Done{e.what(), std::nullopt});
    }
  }

  // An operation's replies go to its session for as long as the client
  // stays; operations of clients that left are dropped here.
  OperationId new_operation(const std::shared_ptr<ControlSession>& session) {
    std::erase_if(sessions_, [](const auto& entry) { return entry.second.expired(); });
    const OperationId operation = next_operation_++;
    if (session) sessions_[operation] = session;
    return operation;
  }

  std::shared_ptr<ControlSession> session_of(OperationId operation) const {
    auto it = sessions_.find(operation);
    return it == sessions_.end() ? nullptr : it->second.lock();
  }

  // --- carrying out the machine's effects ---------------------------------------

  void apply(Effects effects) {
    for (auto& effect : effects)
      std::visit(Overloaded{
                     [this](effect::Launch& launch) { send_to_spawner(launch.instance, launch.spawner); },
                     [this](effect::SignalStop& stop) { signal_stop(stop.instances, stop.kill_if_deaf); },
                     [this](effect::Kill& kill) { kill_instances(kill.instances); },
                     [this](effect::ArmRestartTimer& arm) { arm_restart_timer(arm.instance, arm.delay); },
                     [this](effect::ArmStaggerTimer& arm) { arm_stagger_timer(arm.at); },
                     [this](effect::ArmStopDeadline& arm) { arm_stop_deadline(arm.operation, arm.after); },
                     [this](effect::CancelStopDeadline& cancel) { deadlines_.erase(cancel.operation); },
                     [](effect::PrepareLog& prepare) { prepare_instance_log(prepare.path); },
                     [this](effect::Reply& reply) {
                       if (auto session = session_of(reply.operation)) session->send(reply.reply);
                     },
                     [this](effect::ReplyAfterOutput& reply) {
                       auto watch = watches_.find(reply.event.instance);
                       send_after_output(watch == watches_.end() ? 0 : watch->second.output_pipe,
                                         session_of(reply.operation), std::move(reply.event));
                     },
                     [this](effect::Forgotten& forgotten) {
                       watches_.erase(forgotten.instance);
                       record_texts_.erase(forgotten.instance);
                     },
                     [this](effect::SaveStateNow&) { save_state_now(); },
                     [this](effect::StateChanged&) { mark_dirty(); },
                     [this](effect::ShutDown&) { finish_shutdown(); },
                     [](effect::Log& log) { log_line(log.line); },
                     [this](effect::WriteLimits& write) { write_limits(write.operation, write.limits); },
                 },
                 effect);
  }

  // A running instance's new limits, written where its cgroup is and read
  // back; the machine records them (or answers why not) at once.
  void write_limits(OperationId operation, const protocol::InstanceLimits& limits) {
    std::string error;
    try {
      auto cgroup = cgroups::InstanceCgroup::open(config_.cgroup, limits.instance);
      if (!cgroup) throw Error("its cgroup is gone");
      cgroup->update_settings(limits.cgroup);
    } catch (const std::exception& e) {
      error = e.what();
    }
    apply(machine_.limits_written(operation, limits, error));
  }

  void arm_restart_timer(const std::string& name, std::chrono::milliseconds delay) {
    auto& timer = watches_[name].restart_timer;
    timer = std::make_unique<asio::steady_timer>(io_, delay);
    timer->async_wait([this, name](const boost::system::error_code& ec) {
      if (!ec) apply(machine_.restart_due(name));
    });
  }

  void arm_stagger_timer(std::chrono::steady_clock::time_point at) {
    stagger_timer_.expires_at(at);
    stagger_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) apply(machine_.stagger_due());
    });
  }

  void arm_stop_deadline(OperationId operation, std::chrono::milliseconds after) {
    auto& timer = deadlines_[operation];
    timer = std::make_unique<asio::steady_timer>(io_, after);
    timer->async_wait([this, operation](const boost::system::error_code& ec) {
      if (!ec) apply(machine_.stop_deadline_passed(operation));
    });
  }

  // --- adopting a fleet -------------------------------------------------------

  // The previous supervisor of the fleet died: every instance it recorded is
  // kept (a tree or a mount it holds is still `down`'s to remove), and each
  // whose init still runs (same pid and start time) is watched again.
  void adopt_recorded_instances() {
    auto previous = state::load_state(config_.paths);
    if (!previous) return;
    state_.created_at_unix_ms = previous->created_at_unix_ms;
    // Restarts go on as the fleet was started.
    try {
      config_.restart = parse_restart_policy(previous->restart_policy);
      machine_.set_restart_policy(config_.restart);
      state_.restart_policy = previous->restart_policy;
    } catch (const Error& e) {
      log_line(fmt::format("the recorded restart policy is not valid ({}); keeping {}", e.what(),
                           state_.restart_policy));
    }
    std::size_t adopted = 0, ended = 0;
    for (auto& record : previous->instances) {
      const std::string name = record.name();
      const pid_t pid = record.process.pid;
      UniqueFd pidfd = open_recorded_init(record.process);
      switch (machine_.adopt(std::move(record), bool(pidfd))) {
        case FleetMachine::Adopted::running:
          watch_init(name, std::move(pidfd), true);
          log_line(fmt::format("{} adopted: pid {}", name, pid));
          ++adopted;
          break;
        case FleetMachine::Adopted::ended:
          ++ended;
          break;
        case FleetMachine::Adopted::kept:
          break;
      }
    }
    log_line(fmt::format("took over fleet '{}': {} instance(s) still running adopted, {} ended meanwhile",
                         config_.paths.fleet, adopted, ended));
  }

  // A pidfd for a recorded init, opened by pid and then checked by start
  // time, so a recycled pid is never adopted.
  static UniqueFd open_recorded_init(const state::ProcessIdentity& process) {
    if (process.pid <= 0) return {};
    UniqueFd pidfd(::pidfd_open(process.pid, 0));
    if (!pidfd || !state::is_alive(process)) return {};
    return pidfd;
  }

  void watch_init(const std::string& name, UniqueFd pidfd, bool adopted) {
    InstanceWatch& watch = watches_[name];
    watch.adopted = adopted;
    watch.pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd.release());
    wait_for_exit(name);
  }

  void wait_for_exit(const std::string& name) {
    watches_[name].pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                                     [this, name](const boost::system::error_code& ec) {
                                       if (!ec) on_instance_exit(name);
                                     });
  }

  // --- spawners -----------------------------------------------------------------

  void on_spawner_exit(unsigned index) {
    if (machine_.shutting_down()) return;
    log_line(fmt::format("spawner {} (pid {}) exited; starting a new one", index, pool_.processes()[index].pid));
    apply(machine_.spawner_lost(index, "the spawner died while starting it"));
    pool_.replace(index);
    state_.spawners = pool_.processes();
    apply(machine_.spawner_replaced(index));
  }

  void send_to_spawner(const std::string& name, unsigned spawner) {
    const state::InstanceRecord& record = *machine_.record(name);
    try {
      // A fresh pipe per launch; the write end is closed here once sent.
      UniqueFd output = open_output_pipe(record);
      pool_.send(spawner, {record.spec, record.log_path}, output.get());
    } catch (const Error& e) {
      apply(machine_.launch_failed(spawner, e.what()));
    }
  }

  void on_spawner_reply(unsigned spawner, ReceivedSpawnReply reply) {
    const auto name = machine_.launching_on(spawner);
    if (auto* failed = std::get_if<protocol::SpawnFailed>(&reply.message)) {
      apply(machine_.launch_failed(spawner, failed->error));
      return;
    }
    const auto& started = std::get<protocol::SpawnStarted>(reply.message);
    if (reply.pidfd_lost) {
      apply(machine_.launch_failed(spawner, kill_untracked(name.value_or(""), started.pid)));
      return;
    }
    if (name && machine_.record(*name)) {
      fault_point("supervisor-launched");
      watch_init(*name, std::move(reply.pidfd), false);
    }
    const state::ProcessIdentity process{started.pid, state::read_start_time(started.pid).value_or(0)};
    apply(machine_.launch_succeeded(spawner, process, started.cgroup_paths, started.clone_started_ns,
                                    started.exec_done_ns));
  }

  // A container this process is the parent of but holds no pidfd for: it
  // could never be watched, so it is killed (its pid cannot be reused until
  // it is reaped here) with whatever its cgroup holds. Returns the reason.
  std::string kill_untracked(const std::string& name, pid_t pid) {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    std::string reason = fmt::format(
        "started as pid {}, but its pidfd did not reach the supervisor (MSG_CTRUNC: no descriptor free under its "
        "limit of {} open files); killed",
        pid, lim.rlim_cur);
    ::kill(pid, SIGKILL);
    try {
      if (auto cgroup = cgroups::InstanceCgroup::open(config_.cgroup, name)) cgroup->kill_all(kKillWait);
    } catch (const std::exception& e) {
      log_line(fmt::format("{}: {}", name, e.what()));
    }
    auto deadline = std::chrono::steady_clock::now() + kKillWait;
    while (::waitpid(pid, nullptr, WNOHANG | __WALL) == 0 && std::chrono::steady_clock::now() < deadline)
      ::usleep(10000);
    return reason;
  }

  // Each instance started holds a pidfd and a pipe here: refused up front
  // when they would not fit in the open-file limit, rather than lost on the
  // way in.
  std::optional<std::string> open_files_problem(std::uint64_t more) const {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return std::nullopt;
    std::uint64_t open = lim.rlim_cur;  // when even /proc/self/fd cannot be opened
    try {
      open = open_descriptor_count();
    } catch (const Error&) {
    }
    if (open + more * kOpenFilesPerInstance + kOpenFilesBesideInstances <= lim.rlim_cur) return std::nullopt;
    return fmt::format("the supervisor cannot hold a pidfd and an output pipe for {} more instances: it has {} files "
                       "open and may have {} (its soft limit of open files; the hard limit is {}); raise the hard "
                       "limit (ulimit -Hn, LimitNOFILE=)",
                       more, open, lim.rlim_cur, lim.rlim_max);
  }

  // --- exits and stops ------------------------------------------------------------

  void on_instance_exit(const std::string& name) {
    auto it = watches_.find(name);
    if (it == watches_.end() || !it->second.pidfd) return;
    InstanceWatch& watch = it->second;
    siginfo_t info{};
    bool status_unknown = false;
    if (::waitid(static_cast<idtype_t>(P_PIDFD), watch.pidfd->native_handle(), &info, WEXITED | WNOHANG) != 0 ||
        info.si_pid == 0) {
      // Not reapable yet (or not ours: adopted, reaped elsewhere): wait for
      // the next readiness.
      if (errno == ECHILD || watch.adopted) {
        status_unknown = true;
      } else {
        wait_for_exit(name);
        return;
      }
    }
    watch.pidfd.reset();
    watch.adopted = false;
    state::ExitRecord exit;
    if (status_unknown) exit.code = state::ExitRecord::kUnknown;
    else if (info.si_code == CLD_EXITED) exit.code = info.si_status;
    else exit.signal = info.si_status;
    apply(machine_.instance_exited(name, exit));
  }

  void signal_stop(const std::vector<std::string>& names, bool kill_if_deaf) {
    std::vector<std::string> deaf;
    for (const auto& name : names) {
      auto watch = watches_.find(name);
      const state::InstanceRecord* record = machine_.record(name);
      if (watch == watches_.end() || !watch->second.pidfd || !record) continue;
      const auto& container = record->spec.container;
      ::pidfd_send_signal(watch->second.pidfd->native_handle(), container.stop_signal, nullptr, 0);
      if (kill_if_deaf && state::signal_would_be_dropped(record->process.pid, container.stop_signal,
                                                         container.has_namespace(Namespace::pid)))
        deaf.push_back(name);
    }
    if (deaf.empty()) return;
    log_line(fmt::format("{} instance(s) cannot receive the stop signal: killing them now", deaf.size()));
    kill_instances(deaf);
  }

  void kill_instances(const std::vector<std::string>& names) {
    for (const auto& name : names) {
      auto watch = watches_.find(name);
      if (watch != watches_.end() && watch->second.pidfd)
        ::pidfd_send_signal(watch->second.pidfd->native_handle(), SIGKILL, nullptr, 0);
      try {
        if (auto cgroup = cgroups::InstanceCgroup::open(config_.cgroup, name)) cgroup->kill_all(kKillWait);
      } catch (const std::exception& e) {
        log_line(fmt::format("{}: {}", name, e.what()));
      }
    }
  }

  void finish_shutdown() {
    log_line("all instances stopped; supervisor exits");
    pool_.close_and_reap();
    state_.spawners.clear();
    // The log writer reads end-of-file and ends once the stopped instances'
    // pipes are drained: waited for a moment, so that the logs are complete
    // when this process ends (a unit without ExitType=cgroup ends with it).
    // One still writing stays in the state, for `down`.
    shut_down_ = true;
    log_writer_timer_.cancel();
    if (log_writer_) {
      log_writer_->pidfd->cancel();
      log_writer_->socket.reset();
      pollfd ended{log_writer_->pidfd->native_handle(), POLLIN, 0};
      siginfo_t info{};
      if (::poll(&ended, 1, static_cast<int>(kOutputDrainWait.count())) == 1 &&
          ::waitid(static_cast<idtype_t>(P_PIDFD), ended.fd, &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0)
        state_.log_writer = {};
      log_writer_.reset();
    }
    save_state_now();
    ::unlink(config_.paths.control_socket().c_str());
    // Let the last replies reach their clients before the loop ends.
    asio::post(io_, [this] {
      server_.close();
      signals_.cancel();
      state_timer_.cancel();
      stagger_timer_.cancel();
      deadlines_.clear();
      watches_.clear();
      pipes_.clear();
      io_.stop();
    });
  }

  // --- the log writer ---------------------------------------------------------

  void adopt_log_writer(LogWriterProcess process) {
    auto writer = std::make_unique<LogWriter>();
    writer->process = process.process;
    writer->socket = std::make_unique<asio::posix::stream_descriptor>(io_, process.socket.release());
    writer->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, process.pidfd.release());
    writer->started = std::chrono::steady_clock::now();
    LogWriter* raw = writer.get();
    raw->pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                           [this, raw](const boost::system::error_code& ec) {
                             if (!ec && raw == log_writer_.get()) on_log_writer_exit();
                           });
    log_writer_ = std::move(writer);
    state_.log_writer = log_writer_->process;
    watch_log_writer_socket();
  }

  void watch_log_writer_socket() {
    LogWriter* raw = log_writer_.get();
    raw->socket->async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, raw](const boost::system::error_code& ec) {
                              if (ec || raw != log_writer_.get()) return;
                              std::optional<std::uint64_t> drained;
                              try {
                                drained = receive_drained_pipe(raw->socket->native_handle());
                              } catch (const Error& e) {
                                log_line(e.what());
                                // A socket that fails is the writer's end; its pidfd says so.
                                if (e.sys_errno() == 0) watch_log_writer_socket();
                                return;
                              }
                              // End-of-file: the writer is ending; its pidfd says when.
                              if (!drained) return;
                              output_drained(*drained);
                              watch_log_writer_socket();
                            });
  }

  // Gives the writer a pipe; when that fails the writer is dying, and the
  // one that replaces it is given every pipe still held.
  void hand_to_log_writer(const OutputPipe& pipe) {
    if (!log_writer_) return;
    try {
      send_log_pipe(log_writer_->socket->native_handle(), pipe.about, pipe.read_end.get());
    } catch (const Error& e) {
      log_line(fmt::format("{}: handing its output pipe to the log writer: {}", pipe.about.instance, e.what()));
    }
  }

  void on_log_writer_exit() {
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), log_writer_->pidfd->native_handle(), &info, WEXITED | WNOHANG);
    state::ExitRecord exit;
    if (info.si_code == CLD_EXITED) exit.code = info.si_status;
    else exit.signal = info.si_status;
    const auto lived = std::chrono::steady_clock::now() - log_writer_->started;
    log_line(fmt::format("log writer (pid {}) ended: {}; a new one takes over the {} open output pipe(s)",
                         log_writer_->process.pid, state::describe_exit(exit), pipes_.size()));
    log_writer_.reset();
    state_.log_writer = {};
    if (lived >= kLogWriterRestartPause) {
      start_log_writer();
      return;
    }
    log_writer_timer_.expires_after(kLogWriterRestartPause);
    log_writer_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) start_log_writer();
    });
  }

  void start_log_writer() {
    if (log_writer_ || shut_down_) return;
    try {
      // Forking here is safe: this process runs no other thread.
      adopt_log_writer(fork_log_writer(config_.paths.fleet, config_.log_max_bytes));
    } catch (const Error& e) {
      log_line(std::string("starting a log writer: ") + e.what());
      log_writer_timer_.expires_after(kLogWriterRestartPause);
      log_writer_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) start_log_writer();
      });
      return;
    }
    for (const auto& [id, pipe] : pipes_) hand_to_log_writer(pipe);
    // At once: `down` after a SIGKILL of this process must find this writer.
    save_state_now();
  }

  // A new output pipe for a launch of `instance`: its read end goes to the
  // log writer (and stays here), its write end is returned for the spawner.
  UniqueFd open_output_pipe(const state::InstanceRecord& record) {
    int ends[2];
    check_sys(::pipe2(ends, O_CLOEXEC), "pipe2", "the output pipe of " + record.name());
    UniqueFd write_end(ends[1]);
    OutputPipe pipe;
    pipe.read_end.reset(ends[0]);
    pipe.about = {next_pipe_id_++, record.name(), record.log_path};
    watches_[record.name()].output_pipe = pipe.about.id;
    hand_to_log_writer(pipe);
    pipes_.emplace(pipe.about.id, std::move(pipe));
    return write_end;
  }

  void output_drained(std::uint64_t id) {
    auto it = pipes_.find(id);
    if (it == pipes_.end()) return;
    release_held_events(it->second);
    pipes_.erase(it);
  }

  // Sends `event` once what the launch `pipe_id` wrote is in its log (or
  // after kOutputDrainWait), so that an `up` reading the log sees it.
  void send_after_output(std::uint64_t pipe_id, const std::weak_ptr<ControlSession>& session, protocol::ExitedEvent event) {
    auto it = pipes_.find(pipe_id);
    if (it == pipes_.end()) {
      if (auto s = session.lock()) s->send(event);
      return;
    }
    auto& pipe = it->second;
    pipe.held.push_back({session, std::move(event)});
    if (pipe.held_deadline) return;
    pipe.held_deadline = std::make_unique<asio::steady_timer>(io_, kOutputDrainWait);
    pipe.held_deadline->async_wait([this, pipe_id](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto again = pipes_.find(pipe_id); again != pipes_.end()) release_held_events(again->second);
    });
  }

  void release_held_events(OutputPipe& pipe) {
    for (auto& held : pipe.held)
      if (auto session = held.session.lock()) session->send(held.event);
    pipe.held.clear();
  }


  // --- state ------------------------------------------------------------------

  void mark_dirty() {
    if (state_write_pending_) return;
    state_write_pending_ = true;
    state_timer_.expires_after(
        std::max<std::chrono::steady_clock::duration>(kStateWriteDelay, kStateWriteSpacing * last_state_write_));
    state_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && state_write_pending_) save_state_now();
    });
  }

  // Only the records changed since the last write are serialized again.
  void save_state_now() {
    state_write_pending_ = false;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& name : machine_.take_changed()) record_texts_.erase(name);
    std::vector<std::string_view> records;
    records.reserve(machine_.order().size());
    for (const auto& name : machine_.order()) {
      auto text = record_texts_.find(name);
      if (text == record_texts_.end()) {
        const state::InstanceRecord* record = machine_.record(name);
        if (!record) continue;
        text = record_texts_.emplace(name, state::instance_record_text(*record)).first;
      }
      records.push_back(text->second);
    }
    try {
      state::save_state(config_.paths, state_, records);
    } catch (const Error& e) {
      log_line(e.what());
    }
    last_state_write_ = std::chrono::steady_clock::now() - start;
  }

  SupervisorConfig config_;
  asio::io_context io_;
  SystemClock clock_;
  FleetMachine machine_;
  ControlServer server_;
  SpawnerPool pool_;
  asio::signal_set signals_;
  asio::steady_timer state_timer_;
  asio::steady_timer log_writer_timer_;
  asio::steady_timer stagger_timer_;
  bool state_write_pending_ = false;
  std::chrono::steady_clock::duration last_state_write_{};
  bool shut_down_ = false;
  state::FleetState state_;
  std::unique_ptr<LogWriter> log_writer_;
  std::map<std::uint64_t, OutputPipe> pipes_;
  std::uint64_t next_pipe_id_ = 1;
  std::map<std::string, InstanceWatch> watches_;
  // Each record's text as fleet.json holds it, made again once it changed.
  std::map<std::string, std::string> record_texts_;
  std::map<OperationId, std::weak_ptr<ControlSession>> sessions_;
  OperationId next_operation_ = 1;
  std::map<OperationId, std::unique_ptr<asio::steady_timer>> deadlines_;
};

void notify(int fd, const std::string& message) {
  if (fd < 0) return;
  std::string line = message + "\n";
  [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
  ::close(fd);
}

}  // namespace

std::uint64_t supervisor_open_files_needed(std::uint64_t instances, unsigned spawners) {
  return instances * kOpenFilesPerInstance + std::uint64_t(std::max(1u, spawners)) * kOpenFilesPerSpawner +
         kOpenFilesBesideInstances;
}

int run_supervisor(SupervisorConfig config) {
  set_process_title("haco-fleet: supervisor " + config.paths.fleet);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  log_line(fmt::format("supervisor of fleet '{}' starting (pid {}, {} spawners, restart {})", config.paths.fleet,
                       ::getpid(), config.spawners, format_restart_policy(config.restart)));
  try {
    // One pidfd per instance: the soft limit of open files (often 1024, and
    // 1024 again under a systemd unit) goes up to the hard limit before
    // anything is opened or forked.
    OpenFileLimit open_files = raise_open_file_limit();
    if (open_files.soft != open_files.soft_before)
      log_line(fmt::format("open files: soft limit raised from {} to {} (the hard limit)", open_files.soft_before,
                           open_files.soft));
    // The fleet's cgroup levels exist before any instance starts, with this
    // process in a leaf of its own (the spawners it forks stay there).
    config.cgroup.fleet = config.paths.fleet;
    config.cgroup = cgroups::prepare_fleet_cgroup(config.cgroup, config.paths.state_root);
    if (!cgroups::recorded_state_root(config.cgroup))
      log_line("cgroups: the fleet's cgroup does not name its state root (no user.* attribute there)");
    if (config.cgroup.layout != cgroups::Layout::v1_hybrid)
      log_line(fmt::format("cgroups: {} in {}{}", cgroups::layout_name(config.cgroup.layout), config.cgroup.dir,
                           config.cgroup.unit.empty() ? "" : " (unit " + config.cgroup.unit + ")"));
    UniqueFd listener = listen_on_control_socket(config.paths.control_socket());
    // The spawners and the log writer are forked first, while this process
    // is small and has no io_context yet; they stay in its cgroup.
    std::vector<SpawnerProcess> spawners;
    for (unsigned k = 0; k < std::max(1u, config.spawners); ++k)
      spawners.push_back(fork_spawner(config.cgroup, config.container_open_files, k));
    LogWriterProcess log_writer = fork_log_writer(config.paths.fleet, config.log_max_bytes);
    Supervisor supervisor(config, std::move(listener), std::move(spawners), std::move(log_writer));
    notify(std::exchange(config.notify_fd, -1), "ready");
    // As the main process of its own unit: systemd-run waits for this.
    if (systemd::notify("READY=1\nSTATUS=supervising fleet " + config.paths.fleet)) ::unsetenv("NOTIFY_SOCKET");
    return supervisor.run();
  } catch (const std::exception& e) {
    log_line(std::string("supervisor failed: ") + e.what());
    notify(config.notify_fd, std::string("error: ") + e.what());
    return 1;
  }
}

}  // namespace haco::supervisor
