// Stopping instances and removing everything a fleet left on the host:
// processes, cgroups, rootfs mounts (and with purge the trees), state.
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "haco/supervisor.hpp"
#include "haco/systemd_unit.hpp"

namespace haco::supervisor {
namespace {

using state::InstanceRecord;
using state::ProcessIdentity;
using Clock = std::chrono::steady_clock;

constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr auto kKillWait = std::chrono::milliseconds(5000);
// How long a supervisor may take to exit after it said it is done.
constexpr auto kSupervisorExitWait = std::chrono::milliseconds(5000);
// How long the log writer may take, once the instances are stopped, to write
// what they left in their pipes and exit.
constexpr auto kLogWriterExitWait = std::chrono::milliseconds(5000);

// Signals `who` only if it is still the process we recorded: the pidfd pins
// the process, then its start time is compared.
bool signal_if_same(const ProcessIdentity& who, int signal) {
  if (who.pid <= 0) return false;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, who.pid, 0)));
  if (!pidfd || !state::is_alive(who)) return false;
  return ::syscall(SYS_pidfd_send_signal, pidfd.get(), signal, nullptr, 0) == 0;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPoll);
  }
  return true;
}

void report(const TeardownOptions& options, const std::string& text) {
  if (options.progress) options.progress(text);
}

// Runs `step`; a failure is noted and the teardown goes on with the rest.
class Failures {
 public:
  // Whether the step succeeded.
  template <typename Fn>
  bool attempt(const std::string& what, Fn&& step) {
    try {
      step();
      return true;
    } catch (const std::exception& e) {
      errors_.push_back(what + ": " + e.what());
      return false;
    }
  }
  void note(const std::string& error) { errors_.push_back(error); }
  void throw_if_any(const std::string& context) const {
    if (errors_.empty()) return;
    std::string text;
    for (const auto& e : errors_) text += (text.empty() ? "" : "; ") + e;
    throw Error(context + ": " + text);
  }

 private:
  std::vector<std::string> errors_;
};

// Without a supervisor: the stop signal to each init still alive, then wait
// for those inits and their cgroups to empty.
void stop_unsupervised(const cgroups::FleetCgroup& fleet, const std::vector<InstanceRecord>& records,
                       std::chrono::milliseconds timeout) {
  // Only those that can hear the stop signal are waited for; the others are
  // left to the cgroup kill that follows.
  std::vector<std::pair<ProcessIdentity, std::unique_ptr<cgroups::InstanceCgroup>>> running;
  for (const auto& r : records) {
    const auto& c = r.spec.container;
    if (signal_if_same(r.process, c.stop_signal) &&
        !state::signal_would_be_dropped(r.process.pid, c.stop_signal, c.has_namespace(Namespace::pid)))
      running.emplace_back(r.process, cgroups::InstanceCgroup::open(fleet, r.name()));
  }
  wait_until(
      [&] {
        for (const auto& [process, cgroup] : running) {
          if (state::is_alive(process)) return false;
          if (cgroup && !cgroup->processes().empty()) return false;
        }
        return true;
      },
      timeout);
}

std::vector<pid_t> read_procs(const std::string& dir) {
  std::vector<pid_t> pids;
  std::ifstream in(dir + "/cgroup.procs");
  pid_t pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// The cgroup directories as recorded: InstanceCgroup::open looks under the
// caller's own cgroup, which is not the one `up` ran in when `down` runs
// from another session. Killed until empty, then removed with their fleet
// directory when it is empty.
void remove_recorded_cgroup_dirs(const std::vector<std::string>& dirs) {
  for (const auto& dir : dirs) {
    if (!std::filesystem::exists(dir)) continue;
    for (int attempt = 0; attempt < 250; ++attempt) {
      if (read_procs(dir).empty()) break;
      cgroups::kill_cgroup_members(dir);
      std::this_thread::sleep_for(kPoll);
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) throw Error::from_errno("rmdir", dir, errno);
    ::rmdir(std::filesystem::path(dir).parent_path().c_str());
  }
}

// SIGKILL to whatever is left in each instance's cgroup, then the cgroup goes.
// Returns the instances proven stopped: cgroup empty and removed, init gone.
std::set<std::string> remove_cgroups(const cgroups::FleetCgroup& fleet, const std::vector<InstanceRecord>& records,
                                     Failures& failures) {
  std::set<std::string> stopped;
  for (const auto& r : records) {
    const bool removed = failures.attempt("cgroup of " + r.name(), [&] {
      if (auto cgroup = cgroups::InstanceCgroup::open(fleet, r.name())) {
        if (!cgroup->processes().empty()) cgroup->kill_all(kKillWait);
        // A killed init may take a moment to be reaped by its parent.
        for (int attempt = 0;; ++attempt) {
          try {
            cgroup->remove();
            break;
          } catch (const Error& e) {
            if (attempt >= 50 || e.sys_errno() != EBUSY) throw;
            std::this_thread::sleep_for(kPoll);
          }
        }
      }
      remove_recorded_cgroup_dirs(r.cgroup_paths);
    });
    if (removed && !state::is_alive(r.process))
      stopped.insert(r.name());
    else
      failures.note(r.name() + ": not proven stopped, so its rootfs is kept (run down again)");
  }
  return stopped;
}

// Unmounts (and with purge removes) every recorded rootfs, several at a time.
void teardown_rootfs(const std::string& data_root, const std::vector<InstanceRecord>& records,
                     const std::function<bool(const InstanceRecord&)>& purge, Failures& failures) {
  std::vector<rootfs::PreparedRootfs> purged, kept;
  for (const auto& r : records)
    if (r.rootfs) (purge(r) ? purged : kept).push_back(*r.rootfs);
  if (!purged.empty())
    failures.attempt("removing rootfs trees", [&] {
      rootfs::teardown_fleet(purged, true);
      // A removed tree is no longer incomplete (a bootstrap that failed
      // left its marker).
      for (const auto& p : purged) rootfs::mark_rootfs_complete(data_root, p.instance);
    });
  if (!kept.empty()) failures.attempt("unmounting rootfs", [&] { rootfs::teardown_fleet(kept, false); });
}

std::optional<ControlClient> connect_with_deadline(const state::FleetPaths& paths, std::chrono::milliseconds timeout) {
  auto client = ControlClient::connect(paths);
  if (!client) return client;
  auto total = timeout + std::chrono::seconds(10);
  timeval tv{static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(total).count()), 0};
  ::setsockopt(client->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return client;
}

// Where the fleet's cgroups are, as its state recorded them.
cgroups::FleetCgroup recorded_cgroup(const state::FleetPaths& paths, const std::optional<state::FleetState>& fleet) {
  if (fleet) return fleet->cgroup;
  return {paths.fleet, cgroups::Layout::v1_hybrid, "", ""};
}

}  // namespace

void teardown_fleet(const state::FleetPaths& paths, const TeardownOptions& options) {
  Failures failures;
  std::set<std::string> stopped;
  std::optional<state::FleetState> fleet;
  failures.attempt("reading the state", [&] { fleet = state::load_state(paths); });

  bool supervised = false;
  try {
    if (auto client = connect_with_deadline(paths, options.timeout)) {
      report(options, "stopping instances (supervisor)");
      client->call({{"op", "shutdown"}, {"timeout_ms", options.timeout.count()}});
      supervised = true;
    }
  } catch (const std::exception& e) {
    // Stopped below without it, by pid and cgroup.
    report(options, std::string("the supervisor did not complete the stop: ") + e.what());
  }
  if (fleet) {
    if (!wait_until([&] { return !state::is_alive(fleet->supervisor); }, kSupervisorExitWait)) {
      report(options, "killing the supervisor");
      signal_if_same(fleet->supervisor, SIGKILL);
    }
    for (const auto& spawner : fleet->spawners) signal_if_same(spawner, SIGKILL);
    // The supervisor's last word on pids and rootfs.
    if (supervised) failures.attempt("reading the final state", [&] {
        if (auto last = state::load_state(paths)) fleet = std::move(last);
      });
    if (!supervised) {
      report(options, "stopping instances (no supervisor: by pid and cgroup)");
      stop_unsupervised(fleet->cgroup, fleet->instances, options.timeout);
    }
    report(options, "removing cgroups");
    stopped = remove_cgroups(fleet->cgroup, fleet->instances, failures);
    // With the instances gone, their pipes end and the writer exits by
    // itself; one that does not (an instance that survived) is killed.
    if (!wait_until([&] { return !state::is_alive(fleet->log_writer); }, kLogWriterExitWait)) {
      report(options, "killing the log writer");
      signal_if_same(fleet->log_writer, SIGKILL);
      if (!wait_until([&] { return !state::is_alive(fleet->log_writer); }, kKillWait))
        failures.note(fmt::format("the log writer (pid {}) is still running", fleet->log_writer.pid));
    }
  }
  auto cgroup = recorded_cgroup(paths, fleet);
  failures.attempt("fleet cgroup", [&] { cgroups::remove_fleet_cgroups(cgroup); });
  // The unit `up` made for the fleet (not the unit of an `up --foreground`,
  // which ends by itself when its supervisor is gone).
  if (cgroup.layout == cgroups::Layout::v2_systemd && cgroup.unit == systemd::fleet_unit_name(paths.fleet)) {
    report(options, "stopping unit " + cgroup.unit);
    failures.attempt("unit " + cgroup.unit, [&] {
      systemd::stop_unit(cgroup.unit);
      // systemd removes the unit's cgroup once it is stopped, a moment later;
      // a unit that ended by itself while our levels were still there can
      // leave it behind (it is ours, delegated): removed here then.
      if (cgroup.dir.empty() ||
          wait_until([&] { return !std::filesystem::exists(cgroup.dir); }, std::chrono::milliseconds(1000)))
        return;
      cgroups::remove_fleet_cgroups(cgroup);
      if (::rmdir(cgroup.dir.c_str()) != 0 && errno != ENOENT)
        throw Error::from_errno("rmdir", cgroup.dir + " (the stopped unit's cgroup)", errno);
    });
  }
  if (fleet) {
    report(options, options.purge ? "removing rootfs trees" : "unmounting rootfs");
    // Only what is proven stopped is unmounted or removed: a tree under a
    // process that survived the kill stays, and so does the state.
    std::vector<InstanceRecord> proven;
    for (const auto& r : fleet->instances)
      if (stopped.count(r.name())) proven.push_back(r);
    teardown_rootfs(paths.data_root, proven, [&](const InstanceRecord&) { return options.purge; }, failures);
  }
  if (options.purge)
    failures.attempt("instance logs", [&] {
      if (std::filesystem::exists(paths.log_dir())) rootfs::remove_tree(paths.log_dir());
    });
  failures.throw_if_any("down of fleet '" + paths.fleet + "' is incomplete (state kept in " + paths.dir() + ")");

  report(options, "removing state");
  std::error_code ec;
  for (const auto& file : {paths.state_file(), paths.control_socket(), paths.supervisor_log(), paths.lock_file()})
    std::filesystem::remove(file, ec);
  std::filesystem::remove(paths.dir(), ec);
  if (ec) throw Error::from_errno("rmdir", paths.dir(), ec.value());
}

void teardown_instances(const state::FleetPaths& paths, const std::vector<InstanceRecord>& records,
                        const TeardownOptions& options, bool purge_created) {
  if (records.empty()) return;
  Failures failures;
  bool supervised = false;
  try {
    if (auto client = connect_with_deadline(paths, options.timeout)) {
      nlohmann::json names = nlohmann::json::array();
      for (const auto& r : records) names.push_back(r.name());
      client->call({{"op", "stop"}, {"instances", names}, {"timeout_ms", options.timeout.count()}, {"forget", true}});
      supervised = true;
    }
  } catch (const std::exception& e) {
    report(options, std::string("the supervisor did not complete the stop: ") + e.what());
  }
  std::optional<state::FleetState> fleet;
  failures.attempt("reading the state", [&] { fleet = state::load_state(paths); });
  auto cgroup = recorded_cgroup(paths, fleet);
  if (!supervised) stop_unsupervised(cgroup, records, options.timeout);
  const std::set<std::string> stopped = remove_cgroups(cgroup, records, failures);
  std::vector<InstanceRecord> proven;
  for (const auto& r : records)
    if (stopped.count(r.name())) proven.push_back(r);
  teardown_rootfs(paths.data_root, proven, [&](const InstanceRecord& r) { return purge_created && !r.rootfs->reused; },
                  failures);
  failures.throw_if_any("removing the instances this `up` started");
}

std::optional<FleetMemory> fleet_memory(const state::FleetState& fleet) {
  if (!state::is_alive(fleet.supervisor)) return std::nullopt;
  auto supervisor = state::read_memory(fleet.supervisor.pid);
  if (!supervisor) return std::nullopt;
  FleetMemory memory;
  memory.supervisor = *supervisor;
  memory.total = *supervisor;
  for (const auto& spawner : fleet.spawners) {
    if (!state::is_alive(spawner)) continue;
    if (auto usage = state::read_memory(spawner.pid)) {
      memory.spawners.push_back(*usage);
      memory.total.rss_kib += usage->rss_kib;
      memory.total.pss_kib += usage->pss_kib;
    }
  }
  if (state::is_alive(fleet.log_writer))
    if (auto usage = state::read_memory(fleet.log_writer.pid)) {
      memory.log_writer = usage;
      memory.total.rss_kib += usage->rss_kib;
      memory.total.pss_kib += usage->pss_kib;
    }
  return memory;
}

}  // namespace haco::supervisor
