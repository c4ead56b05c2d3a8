// The supervisor process: spawner pool, log writer, pidfd watches, restart
// policy, state file and the control socket, all on one single-threaded
// io_context.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <variant>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/control_protocol.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/open_files.hpp"
#include "haco/supervisor.hpp"
#include "haco/systemd_unit.hpp"
#include "supervisor/instance_log.hpp"
#include "supervisor/log_writer.hpp"
#include "supervisor/spawner.hpp"
#include "supervisor/supervisor_log.hpp"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace haco::supervisor {
namespace {

namespace asio = boost::asio;
using state::InstanceRecord;
using state::InstanceState;

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

int pidfd_signal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

class Supervisor;

// One client of the control socket; lines out are queued and written in order.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::local::stream_protocol::socket socket, Supervisor& owner)
      : socket_(std::move(socket)), owner_(owner) {}
  void start() { read_next(); }
  void send(const protocol::Reply& reply);

 private:
  void read_next();
  void write_next();

  asio::local::stream_protocol::socket socket_;
  Supervisor& owner_;
  asio::streambuf input_;
  std::deque<std::string> outbox_;
  bool writing_ = false;
};

// A `start` request: answered with "done" once each of its instances started
// or failed.
struct StartOperation {
  std::weak_ptr<Session> session;
  std::set<std::string> waiting;
};

// A `stop` or `shutdown` request: answered once each instance has exited.
struct StopOperation {
  std::weak_ptr<Session> session;
  std::set<std::string> waiting;
  bool forget = false;
  bool shutdown = false;
  std::unique_ptr<asio::steady_timer> deadline;
};

class Instance {
 public:
  const InstanceRecord& record() const { return record_; }
  // Every change of the record goes through here: the text of the record
  // last written to fleet.json is dropped, and made again at the next write.
  InstanceRecord& change() {
    state_text_.reset();
    return record_;
  }
  // The record as fleet.json holds it.
  const std::string& state_text() {
    if (!state_text_) state_text_ = state::instance_record_text(record_);
    return *state_text_;
  }

  std::unique_ptr<asio::posix::stream_descriptor> pidfd;  // while the init runs
  std::unique_ptr<asio::steady_timer> restart_timer;
  std::uint64_t output_pipe = 0;  // id of the last launch's output pipe
  bool stop_requested = false;
  bool launching = false;
  // Started by a previous supervisor: not our child, so its exit status
  // cannot be read (its new parent reaps it).
  bool adopted = false;

 private:
  InstanceRecord record_;
  std::optional<std::string> state_text_;
};

// An event for an `up` that waits until the launch's output is in its log.
struct HeldEvent {
  std::weak_ptr<Session> session;
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

struct Spawner {
  unsigned index = 0;
  state::ProcessIdentity process;
  std::unique_ptr<asio::posix::stream_descriptor> socket;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;
  std::string busy_with;  // instance being launched, empty when idle
};

class Supervisor {
 public:
  Supervisor(SupervisorConfig config, asio::local::stream_protocol::acceptor::native_handle_type listener,
             std::vector<SpawnerProcess> spawners, LogWriterProcess log_writer)
      : config_(std::move(config)),
        acceptor_(io_, asio::local::stream_protocol(), listener),
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
    for (auto& process : spawners) adopt_spawner(std::move(process), static_cast<unsigned>(spawners_.size()));
    adopt_log_writer(std::move(log_writer));
    if (config_.adopt) adopt_recorded_instances();
    refresh_state_processes();
    save_state_now();
  }

  int run() {
    accept_next();
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      log_line(fmt::format("received signal {}: stopping the fleet", signal));
      begin_stop({}, all_names(), std::chrono::milliseconds(10000), false, true);
    });
    io_.run();
    return 0;
  }

  void handle_request(const std::shared_ptr<Session>& session, protocol::Request request) {
    try {
      if (auto* start = std::get_if<protocol::StartRequest>(&request)) {
        start_instances(session, std::move(start->instances));
      } else if (auto* stop = std::get_if<protocol::StopRequest>(&request)) {
        begin_stop(session, stop->instances, stop->timeout, stop->forget, false);
      } else if (auto* shutdown = std::get_if<protocol::ShutdownRequest>(&request)) {
        begin_stop(session, all_names(), shutdown->timeout, false, true);
      } else if (std::holds_alternative<protocol::PingRequest>(request)) {
        session->send(protocol::Done{std::nullopt, ::getpid()});
      }
    } catch (const std::exception& e) {
      session->send(protocol::Done{e.what(), std::nullopt});
    }
  }

 private:
  void adopt_spawner(SpawnerProcess process, unsigned index) {
    auto spawner = std::make_unique<Spawner>();
    spawner->index = index;
    spawner->process = process.process;
    spawner->socket = std::make_unique<asio::posix::stream_descriptor>(io_, process.socket.release());
    spawner->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, process.pidfd.release());
    Spawner* raw = spawner.get();
    raw->pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                           [this, raw](const boost::system::error_code& ec) {
                             if (!ec) on_spawner_exit(raw);
                           });
    if (index < spawners_.size()) spawners_[index] = std::move(spawner);
    else spawners_.push_back(std::move(spawner));
  }

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
      state_.restart_policy = previous->restart_policy;
    } catch (const Error& e) {
      log_line(fmt::format("the recorded restart policy is not valid ({}); keeping {}", e.what(),
                           state_.restart_policy));
    }
    std::size_t adopted = 0, ended = 0;
    for (auto& record : previous->instances) {
      const std::string name = record.name();
      Instance& instance = instances_[name];
      instance.change() = std::move(record);
      state_order_.push_back(name);
      if (watch_adopted(instance)) {
        ++adopted;
      } else if (is_active(instance.record().state)) {
        InstanceRecord& ended_record = instance.change();
        ended_record.state = InstanceState::failed;
        ended_record.process = {};
        ended_record.error = "ended while no supervisor ran (exit status unknown)";
        ++ended;
      }
    }
    log_line(fmt::format("took over fleet '{}': {} instance(s) still running adopted, {} ended meanwhile",
                         config_.paths.fleet, adopted, ended));
  }

  static bool is_active(InstanceState s) {
    return s == InstanceState::running || s == InstanceState::starting || s == InstanceState::restarting ||
           s == InstanceState::stopping;
  }

  // A pidfd for the recorded init, opened by pid and then checked by start
  // time, so a recycled pid is never adopted.
  bool watch_adopted(Instance& instance) {
    const auto& record = instance.record();
    if (record.process.pid <= 0) return false;
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, record.process.pid, 0)));
    if (!pidfd || !state::is_alive(record.process)) return false;
    instance.change().state = InstanceState::running;
    instance.adopted = true;
    instance.pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd.release());
    const std::string name = record.name();
    instance.pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, name](const boost::system::error_code& ec) {
                                 if (!ec) on_instance_exit(name);
                               });
    log_line(fmt::format("{} adopted: pid {}", name, record.process.pid));
    return true;
  }

  void on_spawner_exit(Spawner* spawner) {
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), spawner->pidfd->native_handle(), &info, WEXITED | WNOHANG);
    if (stopping_all_) return;
    log_line(fmt::format("spawner {} (pid {}) exited; starting a new one", spawner->index, spawner->process.pid));
    std::string interrupted = spawner->busy_with;
    unsigned index = spawner->index;
    spawner->socket->cancel();
    spawner->pidfd->cancel();
    // Forking here is safe: this process runs no other thread.
    adopt_spawner(fork_spawner(config_.cgroup, config_.container_open_files, index), index);
    if (!interrupted.empty()) launch_failed(interrupted, "the spawner died while starting it");
    refresh_state_processes();
    mark_dirty();
    dispatch();
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
  UniqueFd open_output_pipe(Instance& instance) {
    int ends[2];
    check_sys(::pipe2(ends, O_CLOEXEC), "pipe2", "the output pipe of " + instance.record().name());
    UniqueFd write_end(ends[1]);
    OutputPipe pipe;
    pipe.read_end.reset(ends[0]);
    pipe.about = {next_pipe_id_++, instance.record().name(), instance.record().log_path};
    instance.output_pipe = pipe.about.id;
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
  void send_after_output(std::uint64_t pipe_id, const std::weak_ptr<Session>& session, protocol::ExitedEvent event) {
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

  std::vector<std::string> all_names() const {
    std::vector<std::string> names;
    for (const auto& [name, instance] : instances_) names.push_back(name);
    return names;
  }

  // --- starting -----------------------------------------------------------

  void start_instances(const std::shared_ptr<Session>& session, std::vector<InstanceRecord> records) {
    if (stopping_all_) throw Error("the fleet is shutting down");
    if (auto problem = open_files_problem(records.size())) {
      for (const auto& record : records) session->send(protocol::FailedEvent{record.name(), *problem});
      session->send(protocol::Done{});
      return;
    }
    auto operation = std::make_shared<StartOperation>();
    operation->session = session;
    std::vector<std::string> accepted;
    for (auto& record : records) {
      auto name = record.name();
      auto existing = instances_.find(name);
      if (existing != instances_.end() && (existing->second.pidfd || existing->second.launching ||
                                           existing->second.record().state == InstanceState::restarting)) {
        session->send(protocol::FailedEvent{name, "already running"});
        continue;
      }
      record.state = InstanceState::starting;
      record.process = {};
      record.error.clear();
      auto& instance = instances_[name];
      instance = Instance{};
      instance.change() = std::move(record);
      prepare_instance_log(instance.record().log_path);
      operation->waiting.insert(name);
      starting_[name] = operation;
      watchers_[name] = session;
      accepted.push_back(name);
    }
    auto& ordered = state_order_;
    for (const auto& name : accepted)
      if (std::find(ordered.begin(), ordered.end(), name) == ordered.end()) ordered.push_back(name);
    for (const auto& name : accepted) queue_.push_back(name);
    // On disk before any of them is cloned: a supervisor killed from here on
    // leaves records that the next `up` or `down` goes by.
    save_state_now();
    if (operation->waiting.empty()) finish_start(*operation);
    dispatch();
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

  void dispatch() {
    while (!queue_.empty()) {
      Spawner* idle = nullptr;
      for (auto& spawner : spawners_)
        if (spawner->busy_with.empty()) {
          idle = spawner.get();
          break;
        }
      if (!idle) return;
      auto now = std::chrono::steady_clock::now();
      if (config_.stagger.count() > 0 && now < last_dispatch_ + config_.stagger) {
        if (!stagger_armed_) {
          stagger_armed_ = true;
          stagger_timer_.expires_at(last_dispatch_ + config_.stagger);
          stagger_timer_.async_wait([this](const boost::system::error_code& ec) {
            stagger_armed_ = false;
            if (!ec) dispatch();
          });
        }
        return;
      }
      auto name = queue_.front();
      queue_.pop_front();
      auto it = instances_.find(name);
      if (it == instances_.end() || it->second.stop_requested) continue;
      last_dispatch_ = now;
      send_to_spawner(*idle, it->second);
    }
  }

  void send_to_spawner(Spawner& spawner, Instance& instance) {
    const auto& name = instance.record().name();
    try {
      // A fresh pipe per launch; the write end is closed here once sent.
      UniqueFd output = open_output_pipe(instance);
      send_spawn_request(spawner.socket->native_handle(), {instance.record().spec, instance.record().log_path},
                         output.get());
    } catch (const Error& e) {
      launch_failed(name, e.what());
      return;
    }
    spawner.busy_with = name;
    instance.launching = true;
    Spawner* raw = &spawner;
    spawner.socket->async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, raw](const boost::system::error_code& ec) {
                                 if (!ec) on_spawner_reply(*raw);
                               });
  }

  void on_spawner_reply(Spawner& spawner) {
    std::string name = std::exchange(spawner.busy_with, std::string());
    ReceivedSpawnReply reply;
    try {
      reply = receive_spawn_reply(spawner.socket->native_handle());
    } catch (const std::exception& e) {
      // The spawner died; on_spawner_exit replaces it.
      spawner.busy_with.clear();
      launch_failed(name, std::string("spawner: ") + e.what());
      return;
    }
    auto it = instances_.find(name);
    if (it == instances_.end()) {
      dispatch();
      return;
    }
    auto& instance = it->second;
    instance.launching = false;
    if (auto* failed = std::get_if<protocol::SpawnFailed>(&reply.message)) {
      launch_failed(name, failed->error);
    } else if (const auto& started = std::get<protocol::SpawnStarted>(reply.message); reply.pidfd_lost) {
      launch_failed(name, kill_untracked(name, started.pid));
    } else {
      launch_succeeded(instance, started, std::move(reply.pidfd));
    }
    dispatch();
  }

  void launch_succeeded(Instance& instance, const protocol::SpawnStarted& started, UniqueFd pidfd) {
    fault_point("supervisor-launched");
    auto& record = instance.change();
    auto identity = state::read_start_time(started.pid);
    record.process = {started.pid, identity.value_or(0)};
    record.cgroup_paths = started.cgroup_paths;
    record.state = InstanceState::running;
    record.started_at_unix_ms = state::unix_now_ms();
    record.error.clear();
    instance.pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd.release());
    auto name = record.name();
    instance.pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, name](const boost::system::error_code& ec) {
                                 if (!ec) on_instance_exit(name);
                               });
    log_line(fmt::format("{} started: pid {}", name, started.pid));
    notify_started(name, protocol::StartedEvent{name, started.pid, record.process.start_time,
                                                started.clone_started_ns, started.exec_done_ns});
    if (instance.stop_requested) pidfd_signal(instance.pidfd->native_handle(), record.spec.container.stop_signal);
    mark_dirty();
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

  void launch_failed(const std::string& name, const std::string& error) {
    auto it = instances_.find(name);
    if (it == instances_.end()) return;
    auto& instance = it->second;
    instance.launching = false;
    auto& record = instance.change();
    record.state = instance.stop_requested ? InstanceState::stopped : InstanceState::failed;
    record.error = error;
    log_line(fmt::format("{} failed to start: {}", name, error));
    notify_started(name, protocol::FailedEvent{name, error});
    instance_gone(name);
    mark_dirty();
  }

  void notify_started(const std::string& name, const protocol::Reply& event) {
    auto it = starting_.find(name);
    if (it == starting_.end()) return;
    auto operation = it->second;
    starting_.erase(it);
    if (auto session = operation->session.lock()) session->send(event);
    operation->waiting.erase(name);
    if (operation->waiting.empty()) finish_start(*operation);
  }

  void finish_start(StartOperation& operation) {
    save_state_now();
    if (auto session = operation.session.lock()) session->send(protocol::Done{});
  }

  // --- exits and restarts ---------------------------------------------------

  void on_instance_exit(const std::string& name) {
    auto it = instances_.find(name);
    if (it == instances_.end() || !it->second.pidfd) return;
    auto& instance = it->second;
    siginfo_t info{};
    bool status_unknown = false;
    if (::waitid(static_cast<idtype_t>(P_PIDFD), instance.pidfd->native_handle(), &info, WEXITED | WNOHANG) != 0 ||
        info.si_pid == 0) {
      // Not reapable yet (or not ours: adopted, reaped elsewhere): wait for
      // the next readiness.
      if (errno == ECHILD || instance.adopted) {
        status_unknown = true;
      } else {
        instance.pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                                   [this, name](const boost::system::error_code& ec) {
                                     if (!ec) on_instance_exit(name);
                                   });
        return;
      }
    }
    instance.pidfd.reset();
    auto& record = instance.change();
    instance.adopted = false;
    state::ExitRecord exit;
    exit.at_unix_ms = state::unix_now_ms();
    if (status_unknown) exit.code = state::ExitRecord::kUnknown;
    else if (info.si_code == CLD_EXITED) exit.code = info.si_status;
    else exit.signal = info.si_status;
    record.last_exit = exit;
    record.process = {};
    log_line(fmt::format("{} ended: {}", name, state::describe_exit(exit)));
    if (instance.stop_requested) {
      record.state = InstanceState::stopped;
    } else if (should_restart(config_.restart, exit, record.restarts)) {
      record.state = InstanceState::restarting;
      auto delay = restart_delay(record.restarts);
      ++record.restarts;
      instance.restart_timer = std::make_unique<asio::steady_timer>(io_, delay);
      instance.restart_timer->async_wait([this, name](const boost::system::error_code& ec) {
        if (ec) return;
        auto again = instances_.find(name);
        if (again == instances_.end() || again->second.stop_requested) return;
        again->second.change().state = InstanceState::starting;
        queue_.push_back(name);
        dispatch();
      });
    } else {
      record.state = (exit.signal == 0 && exit.code == 0) ? InstanceState::exited : InstanceState::failed;
    }
    // The `up` that started it may still wait for it to be ready; it reads
    // the log, so the event goes once what the init wrote is there.
    if (auto watcher = watchers_.find(name); watcher != watchers_.end())
      send_after_output(instance.output_pipe, watcher->second,
                        protocol::ExitedEvent{name, state::describe_exit(exit),
                                              record.state == InstanceState::restarting});
    instance_gone(name);
    mark_dirty();
  }

  // --- stopping ---------------------------------------------------------------

  void begin_stop(const std::shared_ptr<Session>& session, const std::vector<std::string>& names,
                  std::chrono::milliseconds timeout, bool forget, bool shutdown) {
    if (shutdown) stopping_all_ = true;
    auto operation = std::make_shared<StopOperation>();
    operation->session = session;
    operation->forget = forget;
    operation->shutdown = shutdown;
    std::set<std::string> deaf;
    for (const auto& name : names) {
      auto it = instances_.find(name);
      if (it == instances_.end()) continue;
      auto& instance = it->second;
      instance.stop_requested = true;
      if (instance.restart_timer) instance.restart_timer->cancel();
      if (instance.pidfd) {
        instance.change().state = InstanceState::stopping;
        const auto& container = instance.record().spec.container;
        pidfd_signal(instance.pidfd->native_handle(), container.stop_signal);
        if (state::signal_would_be_dropped(instance.record().process.pid, container.stop_signal,
                                    container.has_namespace(Namespace::pid)))
          deaf.insert(name);
        operation->waiting.insert(name);
      } else if (instance.launching) {
        instance.change().state = InstanceState::stopping;
        operation->waiting.insert(name);
      } else if (instance.record().state == InstanceState::starting ||
                 instance.record().state == InstanceState::restarting) {
        instance.change().state = InstanceState::stopped;
        notify_started(name, protocol::FailedEvent{name, "stopped before it started"});
      }
    }
    for (const auto& name : names) forget_later_.erase(name);
    if (forget)
      for (const auto& name : names) forget_later_.insert(name);
    if (!deaf.empty()) {
      log_line(fmt::format("{} instance(s) cannot receive the stop signal: killing them now", deaf.size()));
      kill_instances(deaf);
    }
    operation->deadline = std::make_unique<asio::steady_timer>(io_, timeout);
    std::weak_ptr<StopOperation> weak = operation;
    operation->deadline->async_wait([this, weak](const boost::system::error_code& ec) {
      auto op = weak.lock();
      if (!ec && op) kill_remaining(*op);
    });
    stops_.push_back(operation);
    mark_dirty();
    check_stops();
  }

  // The stop signal was not enough: SIGKILL through the cgroup (every process
  // of the instance, not only its init).
  void kill_remaining(StopOperation& operation) {
    for (const auto& name : operation.waiting) log_line(fmt::format("{} did not stop in time: killing its cgroup", name));
    kill_instances(operation.waiting);
  }

  void kill_instances(const std::set<std::string>& names) {
    for (const auto& name : names) {
      auto it = instances_.find(name);
      if (it != instances_.end() && it->second.pidfd) pidfd_signal(it->second.pidfd->native_handle(), SIGKILL);
      try {
        if (auto cgroup = cgroups::InstanceCgroup::open(config_.cgroup, name)) cgroup->kill_all(kKillWait);
      } catch (const std::exception& e) {
        log_line(fmt::format("{}: {}", name, e.what()));
      }
    }
  }

  // Called whenever an instance stops running (exit, failed launch).
  void instance_gone(const std::string& name) {
    for (auto& operation : stops_) operation->waiting.erase(name);
    check_stops();
  }

  void check_stops() {
    for (auto it = stops_.begin(); it != stops_.end();) {
      auto operation = *it;
      if (!operation->waiting.empty()) {
        ++it;
        continue;
      }
      it = stops_.erase(it);
      operation->deadline->cancel();
      if (operation->forget) {
        for (const auto& name : forget_later_) {
          instances_.erase(name);
          watchers_.erase(name);
          state_order_.erase(std::remove(state_order_.begin(), state_order_.end(), name), state_order_.end());
        }
        forget_later_.clear();
      }
      save_state_now();
      auto session = operation->session.lock();
      if (session) session->send(protocol::Done{});
      if (operation->shutdown) finish_shutdown();
    }
  }

  void finish_shutdown() {
    log_line("all instances stopped; supervisor exits");
    for (auto& spawner : spawners_) {
      spawner->pidfd->cancel();
      spawner->socket.reset();  // the spawner reads end-of-file and exits
    }
    for (auto& spawner : spawners_) {
      siginfo_t info{};
      ::waitid(static_cast<idtype_t>(P_PIDFD), spawner->pidfd->native_handle(), &info, WEXITED);
    }
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
      acceptor_.close();
      signals_.cancel();
      state_timer_.cancel();
      stagger_timer_.cancel();
      pipes_.clear();
      io_.stop();
    });
  }

  // --- state ------------------------------------------------------------------

  void refresh_state_processes() {
    state_.spawners.clear();
    for (const auto& spawner : spawners_) state_.spawners.push_back(spawner->process);
  }

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
    std::vector<std::string_view> records;
    records.reserve(state_order_.size());
    for (const auto& name : state_order_) {
      auto it = instances_.find(name);
      if (it != instances_.end()) records.push_back(it->second.state_text());
    }
    try {
      state::save_state(config_.paths, state_, records);
    } catch (const Error& e) {
      log_line(e.what());
    }
    last_state_write_ = std::chrono::steady_clock::now() - start;
  }

  void accept_next() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, asio::local::stream_protocol::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket), *this)->start();
      accept_next();
    });
  }

  SupervisorConfig config_;
  asio::io_context io_;
  asio::local::stream_protocol::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer state_timer_;
  asio::steady_timer log_writer_timer_;
  asio::steady_timer stagger_timer_;
  bool stagger_armed_ = false;
  bool state_write_pending_ = false;
  std::chrono::steady_clock::duration last_state_write_{};
  bool stopping_all_ = false;
  bool shut_down_ = false;
  std::chrono::steady_clock::time_point last_dispatch_{};
  state::FleetState state_;
  std::vector<std::unique_ptr<Spawner>> spawners_;
  std::unique_ptr<LogWriter> log_writer_;
  std::map<std::uint64_t, OutputPipe> pipes_;
  std::uint64_t next_pipe_id_ = 1;
  std::map<std::string, Instance> instances_;
  std::vector<std::string> state_order_;  // instances in the order they were started
  std::deque<std::string> queue_;         // waiting for a spawner
  std::map<std::string, std::shared_ptr<StartOperation>> starting_;
  std::map<std::string, std::weak_ptr<Session>> watchers_;  // who started each instance
  std::vector<std::shared_ptr<StopOperation>> stops_;
  std::set<std::string> forget_later_;
};

void Session::send(const protocol::Reply& reply) {
  outbox_.push_back(protocol::encode(reply) + "\n");
  if (!writing_) write_next();
}

void Session::write_next() {
  if (outbox_.empty()) {
    writing_ = false;
    return;
  }
  writing_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(outbox_.front()), [self](const boost::system::error_code& ec, std::size_t) {
    if (ec) {
      self->outbox_.clear();
      self->writing_ = false;
      return;
    }
    self->outbox_.pop_front();
    self->write_next();
  });
}

void Session::read_next() {
  auto self = shared_from_this();
  asio::async_read_until(socket_, input_, '\n', [self](const boost::system::error_code& ec, std::size_t size) {
    if (ec) return;
    std::string line(asio::buffers_begin(self->input_.data()), asio::buffers_begin(self->input_.data()) + size);
    self->input_.consume(size);
    // A request of another protocol version, or one that is not a request,
    // is answered with its reason; the connection stays open.
    std::optional<protocol::Request> request;
    try {
      request = protocol::decode_request(line);
    } catch (const std::exception& e) {
      self->send(protocol::Done{e.what(), std::nullopt});
    }
    if (request) self->owner_.handle_request(self, std::move(*request));
    self->read_next();
  });
}

int listen_on(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) throw Error("control socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  // The fleet lock is held by the `up` that starts us: a socket file left
  // here belongs to a supervisor that is gone.
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  check_sys(fd.get(), "socket");
  check_sys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), "bind", path);
  ::chmod(path.c_str(), 0600);
  check_sys(::listen(fd.get(), 64), "listen", path);
  return fd.release();
}

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
    UniqueFd listener(listen_on(config.paths.control_socket()));
    // The spawners and the log writer are forked first, while this process
    // is small and has no io_context yet; they stay in its cgroup.
    std::vector<SpawnerProcess> spawners;
    for (unsigned k = 0; k < std::max(1u, config.spawners); ++k)
      spawners.push_back(fork_spawner(config.cgroup, config.container_open_files, k));
    LogWriterProcess log_writer = fork_log_writer(config.paths.fleet, config.log_max_bytes);
    Supervisor supervisor(config, listener.release(), std::move(spawners), std::move(log_writer));
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
