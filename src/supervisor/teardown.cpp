// Stopping instances and removing everything a fleet left on the host:
// processes, cgroups, rootfs mounts (and with purge the trees), state.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/kept_trees.hpp"
#include "haco/names.hpp"
#include "haco/pidfd.hpp"
#include "haco/registry.hpp"
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
  UniqueFd pidfd(::pidfd_open(who.pid, 0));
  if (!pidfd || !state::is_alive(who)) return false;
  return ::pidfd_send_signal(pidfd.get(), signal, nullptr, 0) == 0;
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

// The cgroup directories as recorded: InstanceCgroup::open looks under the
// caller's own cgroup, which is not the one `up` ran in when `down` runs
// from another session. Killed until empty, then removed with their fleet
// directory when it is empty.
void remove_recorded_cgroup_dirs(const std::vector<std::string>& dirs) {
  for (const auto& dir : dirs) {
    if (!std::filesystem::exists(dir)) continue;
    for (int attempt = 0; attempt < 250; ++attempt) {
      if (cgroups::read_procs(dir).empty()) break;
      cgroups::kill_cgroup_members(dir);
      std::this_thread::sleep_for(kPoll);
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) throw Error::from_errno("rmdir", dir, errno);
    // On a v1 host the fleet's level in each hierarchy, its `.supervisor`
    // and the `haco-fleet` level above, each only once empty (rmdir fails
    // on a directory that still has children or processes).
    std::filesystem::path fleet_level = std::filesystem::path(dir).parent_path();
    ::rmdir((fleet_level / ".supervisor").c_str());
    ::rmdir(fleet_level.c_str());
    if (fleet_level.parent_path().filename() == "haco-fleet") ::rmdir(fleet_level.parent_path().c_str());
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


// Where a fleet of that name has its cgroups on this host (its state lost).
cgroups::FleetCgroup cgroup_by_name(const std::string& fleet) {
  auto where = cgroups::unrecorded_fleet_cgroup(fleet);
  if (where.layout == cgroups::Layout::v2_systemd) {
    where.unit = systemd::fleet_unit_name(fleet);
    where.dir = systemd::unit_cgroup_dir(where.unit);
  }
  return where;
}

// Where the fleet's cgroups are: as its state recorded them, or (state
// lost) where a fleet of that name has them on this host.
cgroups::FleetCgroup recorded_cgroup(const state::FleetPaths& paths, const std::optional<state::FleetState>& fleet) {
  return fleet ? fleet->cgroup : cgroup_by_name(paths.fleet);
}

// The state root `cgroup` is marked with (cgroups::kStateRootAttribute) when
// it is not `state_root`. A cgroup without the mark (made by a binary from
// before it, or on a cgroupfs without user.* attributes) counts as
// `state_root`'s, as every fleet did before.
std::optional<std::string> marked_for_other_root(const cgroups::FleetCgroup& cgroup, const std::string& state_root) {
  auto marked = cgroups::recorded_state_root(cgroup);
  if (!marked || *marked == cgroups::state_root_identity(state_root)) return std::nullopt;
  return marked;
}

// The instances of the fleet that its state does not record (`recorded`):
// a container started while the supervisor died before it wrote it down, a
// rootfs prepared by an `up` killed before it asked for it, a fleet whose
// state was lost. Found by their cgroups and by the fleet's claims; each
// with the rootfs found for it (rootfs::find_unrecorded_rootfs).
std::vector<InstanceRecord> unrecorded_instances(const state::FleetPaths& paths, const cgroups::FleetCgroup& cgroup,
                                                 const std::vector<InstanceRecord>& recorded) {
  std::set<std::string> known;
  for (const auto& r : recorded) known.insert(r.name());
  std::map<std::string, std::string> found;  // name -> the rootfs claimed for it
  for (const auto& name : cgroups::instance_cgroup_names(cgroup))
    if (!known.count(name)) found[name];
  try {
    if (auto claims = registry::load_claims(paths))
      for (const auto& c : claims->instances)
        if (!known.count(c.instance)) found[c.instance] = c.rootfs;
  } catch (const Error&) {
    // Unreadable claims: the cgroups still tell.
  }
  std::vector<InstanceRecord> out;
  for (const auto& [name, rootfs] : found) {
    InstanceRecord r;
    r.spec.container.name = name;
    r.rootfs = rootfs::find_unrecorded_rootfs(paths.data_root, name, rootfs);
    out.push_back(std::move(r));
  }
  return out;
}

// What is left in the supervisor's cgroup is killed there: with no state,
// the supervisor, its spawners and log writer are known by nothing else; after
// a takeover, the previous log writer ends with the adopted instances' pipes
// and is given `grace` for it. Never when this process is in it (`up
// --foreground` stopping its fleet from its own unit).
void kill_supervisor_cgroup(const cgroups::FleetCgroup& cgroup, std::chrono::milliseconds grace,
                            Failures& failures) {
  const std::string dir = cgroups::supervisor_cgroup_dir(cgroup);
  if (dir.empty()) return;
  failures.attempt("the supervisor's cgroup " + dir, [&] {
    if (wait_until([&] { return cgroups::read_procs(dir).empty(); }, grace)) return;
    auto members = cgroups::read_procs(dir);
    if (std::find(members.begin(), members.end(), ::getpid()) != members.end()) return;
    for (int attempt = 0; attempt < 250 && !cgroups::read_procs(dir).empty(); ++attempt) {
      cgroups::kill_cgroup_members(dir);
      std::this_thread::sleep_for(kPoll);
    }
  });
}

}  // namespace

std::optional<ControlClient> connect_with_deadline(const state::FleetPaths& paths, std::chrono::milliseconds timeout) {
  auto client = ControlClient::connect(paths);
  if (!client) return client;
  auto total = timeout + std::chrono::seconds(10);
  timeval tv{static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(total).count()), 0};
  ::setsockopt(client->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return client;
}

std::optional<std::string> other_state_root(const state::FleetPaths& paths) {
  std::optional<state::FleetState> fleet;
  try {
    fleet = state::load_state(paths);
  } catch (const Error&) {
    // Unreadable: the cgroup is looked for by the fleet's name.
  }
  return marked_for_other_root(recorded_cgroup(paths, fleet), paths.state_root);
}

std::string belongs_to_other_root(const std::string& fleet, const std::string& other_root) {
  return fmt::format("fleet '{}' belongs to state root {} (use --root {})", fleet, other_root, other_root);
}

void teardown_fleet(const state::FleetPaths& paths, const TeardownOptions& options) {
  // Another state root's fleet of the same name (its cgroups are where this
  // one's would be): nothing of it is touched.
  if (auto other = other_state_root(paths)) throw InputError(belongs_to_other_root(paths.fleet, *other));
  Failures failures;
  std::set<std::string> stopped;
  std::optional<state::FleetState> fleet;
  const bool state_read = failures.attempt("reading the state", [&] { fleet = state::load_state(paths); });

  bool supervised = false;
  try {
    if (auto client = connect_with_deadline(paths, options.timeout)) {
      report(options, "stopping instances (supervisor)");
      client->call(protocol::ShutdownRequest{options.timeout});
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
    fault_point("down-stopped");
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
  if (!fleet && state_read) {
    report(options, "no state: stopping what the fleet's cgroups hold");
    kill_supervisor_cgroup(cgroup, std::chrono::milliseconds(0), failures);
  }
  // What the state does not record: found by cgroup and claim, killed there.
  const std::vector<InstanceRecord> unrecorded =
      unrecorded_instances(paths, cgroup, fleet ? fleet->instances : std::vector<InstanceRecord>{});
  std::set<std::string> unrecorded_stopped;
  if (!unrecorded.empty()) {
    report(options, fmt::format("{} instance(s) not in the state (found by cgroup or claim)", unrecorded.size()));
    unrecorded_stopped = remove_cgroups(cgroup, unrecorded, failures);
  }
  kill_supervisor_cgroup(cgroup, std::chrono::milliseconds(1000), failures);
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
  {
    report(options, options.purge ? "removing rootfs trees" : "unmounting rootfs");
    // Only what is proven stopped is unmounted or removed: a tree under a
    // process that survived the kill stays, and so does the state.
    std::vector<InstanceRecord> proven;
    if (fleet)
      for (const auto& r : fleet->instances)
        if (stopped.count(r.name())) proven.push_back(r);
    for (const auto& r : unrecorded)
      if (unrecorded_stopped.count(r.name())) proven.push_back(r);
    teardown_rootfs(paths.data_root, proven, [&](const InstanceRecord&) { return options.purge; }, failures);
    // Kept for a later `down --purge`, which finds them by this record once
    // the state is gone.
    if (!options.purge) failures.attempt("recording the kept trees", [&] { remember_kept(paths, proven); });
  }
  if (options.purge) {
    failures.attempt("what an earlier down kept", [&] {
      auto purge = purge_kept(paths, options.progress);
      for (const auto& line : purge.skipped) report(options, "kept: " + line);
    });
    failures.attempt("instance logs", [&] {
      if (std::filesystem::exists(paths.log_dir())) rootfs::remove_tree(paths.log_dir());
    });
  }
  failures.throw_if_any("down of fleet '" + paths.fleet + "' is incomplete (state kept in " + paths.dir() + ")");

  report(options, "removing state");
  std::error_code ec;
  // The claims go last: until then the fleet's names, ports, ids and trees
  // stay taken.
  for (const auto& file : {paths.state_file(), paths.control_socket(), paths.supervisor_log(), paths.claims_file(),
                           paths.lock_file()})
    std::filesystem::remove(file, ec);
  std::filesystem::remove(paths.dir(), ec);
  if (ec) {
    std::string left;
    std::error_code list_ec;
    for (const auto& entry : std::filesystem::directory_iterator(paths.dir(), list_ec))
      left += (left.empty() ? "" : ", ") + entry.path().filename().string();
    throw Error::from_errno("rmdir", paths.dir() + (left.empty() ? "" : " (holding " + left + ")"), ec.value());
  }
}

void teardown_instances(const state::FleetPaths& paths, const std::vector<InstanceRecord>& records,
                        const TeardownOptions& options, TreePurge trees) {
  if (records.empty()) return;
  Failures failures;
  bool supervised = false;
  try {
    if (auto client = connect_with_deadline(paths, options.timeout)) {
      protocol::StopRequest stop{{}, options.timeout, true};
      for (const auto& r : records) stop.instances.push_back(r.name());
      client->call(stop);
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
  auto purged = [&](const InstanceRecord& r) {
    return trees == TreePurge::all || (trees == TreePurge::created && r.rootfs && !r.rootfs->reused);
  };
  teardown_rootfs(paths.data_root, proven, purged, failures);
  std::vector<InstanceRecord> kept;
  std::set<std::string> released;
  for (const auto& r : proven) {
    if (!purged(r)) kept.push_back(r);
    released.insert(r.name());
  }
  failures.attempt("recording the kept trees", [&] { remember_kept(paths, kept); });
  if (trees == TreePurge::all)
    failures.attempt("instance logs", [&] {
      for (const auto& r : proven) remove_instance_logs(paths, r.name());
    });
  failures.attempt("releasing the claims", [&] { registry::release_instances(paths, released); });
  failures.throw_if_any("removing " + std::to_string(records.size()) + " instance(s) of fleet '" + paths.fleet + "'");
}

bool fleet_left_traces(const state::FleetPaths& paths) {
  if (std::filesystem::exists(paths.claims_file())) return true;
  const auto cgroup = cgroup_by_name(paths.fleet);
  // The cgroups and unit of another state root's fleet are not this one's traces.
  if (marked_for_other_root(cgroup, paths.state_root)) return false;
  if (cgroup.layout == cgroups::Layout::v2_systemd && systemd::unit_is_active(cgroup.unit)) return true;
  if (!cgroups::instance_cgroup_names(cgroup).empty()) return true;
  const std::string supervisor = cgroups::supervisor_cgroup_dir(cgroup);
  return !supervisor.empty() && !cgroups::read_procs(supervisor).empty();
}

std::vector<std::string> fleets_without_state(const std::string& state_root) {
  std::set<std::string> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_root, ec))
    if (is_valid_name(entry.path().filename().string()) && std::filesystem::exists(entry.path() / "claims.json"))
      found.insert(entry.path().filename().string());
  // Found by cgroup or unit: only the fleets whose cgroup names this state
  // root, or names none (started by a binary from before the mark: taken,
  // as they always were).
  std::vector<std::string> on_host = cgroups::fleets_with_cgroups();
  if (cgroups::detect_layout() == cgroups::Layout::v2_systemd)
    for (const auto& f : systemd::fleets_with_units()) on_host.push_back(f);
  for (const auto& f : on_host)
    if (!found.count(f) && !marked_for_other_root(cgroup_by_name(f), state_root)) found.insert(f);
  for (const auto& f : state::list_fleets(state_root)) found.erase(f);
  return {found.begin(), found.end()};
}

void clear_leftovers(const state::FleetPaths& paths, const state::FleetState& fleet,
                     const std::function<bool(const std::string&)>& wanted) {
  std::vector<InstanceRecord> left;
  for (const auto& r : fleet.instances)
    if (wanted(r.name()) && !state::is_alive(r.process)) left.push_back(r);
  for (auto& r : unrecorded_instances(paths, fleet.cgroup, fleet.instances))
    if (wanted(r.name())) left.push_back(std::move(r));
  if (left.empty()) return;
  Failures failures;
  const std::set<std::string> stopped = remove_cgroups(fleet.cgroup, left, failures);
  std::vector<InstanceRecord> proven;
  for (const auto& r : left)
    if (stopped.count(r.name())) proven.push_back(r);
  teardown_rootfs(paths.data_root, proven, [](const InstanceRecord&) { return false; }, failures);
  failures.throw_if_any("clearing what fleet '" + paths.fleet + "' left of instances that do not run");
}

void clear_for_takeover(const state::FleetPaths& paths, const state::FleetState& fleet) {
  signal_if_same(fleet.supervisor, SIGKILL);
  for (const auto& spawner : fleet.spawners) signal_if_same(spawner, SIGKILL);
  wait_until([&] { return !state::is_alive(fleet.supervisor); }, kSupervisorExitWait);
  clear_leftovers(paths, fleet, [](const std::string&) { return true; });
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
