// `up`: check, lock, claim, start (or take over) the supervisor, prepare
// every rootfs, launch through the supervisor, wait until ready, undo what
// failed. Everything it does to the world goes through UpServices.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <fmt/format.h>

#include "haco/bootstrap_plan.hpp"
#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/layout.hpp"
#include "haco/ops.hpp"
#include "haco/printable.hpp"
#include "haco/registry.hpp"
#include "haco/systemd_unit.hpp"
#include "ops/launch_wait.hpp"

namespace haco::ops {
namespace {

using state::InstanceRecord;

struct Interrupted {};

// Bad input found before anything starts: every definition must say where
// its rootfs comes from.
void check_rootfs_sources(const std::vector<InstanceSpec>& instances, RootfsPreparer& preparer) {
  std::vector<std::string> problems;
  for (const auto& i : instances) {
    const auto& c = i.container;
    if (c.bootstrap.kind == BootstrapKind::none && !preparer.exists(c.rootfs))
      problems.push_back(c.name + ": rootfs " + c.rootfs + " does not exist and the definition has no bootstrap");
    if (c.bootstrap.kind == BootstrapKind::tarball && ::access(c.bootstrap.archive_path.c_str(), R_OK) != 0)
      problems.push_back(c.name + ": image " + c.bootstrap.archive_path + " cannot be read: " + std::strerror(errno));
  }
  if (problems.empty()) return;
  std::string text;
  for (const auto& p : problems) text += "\n  " + p;
  throw InputError("cannot prepare the rootfs of every instance:" + text);
}

// An instance without a user namespace runs as the host's root: only when
// asked for, and said every time.
void check_host_root(const std::vector<InstanceSpec>& instances, bool allowed, Sink& sink) {
  const std::vector<std::string> names = fleet::instances_running_as_host_root(instances);
  if (names.empty()) return;
  std::string listed = "'" + names.front() + "'";
  if (names.size() > 1)
    listed += fmt::format(" and {} other instance{}", names.size() - 1, names.size() > 2 ? "s" : "");
  if (!allowed)
    throw InputError(fmt::format("{} {} no user namespace: {} root would be the host's root (nothing was started); "
                                 "pass --allow-host-root to accept this",
                                 listed, names.size() == 1 ? "has" : "have", names.size() == 1 ? "its" : "their"));
  sink.warning(fmt::format("{} {} no user namespace: {} root is the host's root "
                           "(--allow-host-root)",
                           listed, names.size() == 1 ? "has" : "have", names.size() == 1 ? "its" : "their"));
}

class Up {
 public:
  Up(const UpRequest& request, UpServices services)
      : request_(request), services_(std::move(services)), sink_(services_.sink) {
    result_.latency = std::make_shared<observe::LatencyRecorder>();
  }

  UpResult run() {
    const auto& instances = request_.instances;
    check_host_root(instances, request_.allow_host_root, sink_);
    check_rootfs_sources(instances, services_.rootfs);
    check_open_file_need(supervisor::supervisor_open_files_needed(instances.size(), request_.parallel),
                         request_.open_files, fmt::format("a fleet of {} instances", instances.size()));
    paths_.emplace(request_.state_root, request_.data_root, request_.fleet);
    result_.paths.emplace(*paths_);
    // A fleet of this name under another state root holds the same cgroups
    // (and, under systemd, the same unit): refused before anything is made.
    if (auto other = services_.supervisor.other_state_root(*paths_))
      throw InputError(supervisor::belongs_to_other_root(paths_->fleet, *other));
    layout::DataRoot(request_.data_root).make_directories();

    // Ctrl-C while waiting for the lock simply ends `up`: nothing started.
    auto lock = state::FleetLock::acquire(*paths_, true);
    if (request_.on_locked) request_.on_locked();
    auto to_start = select_instances(instances);
    if (to_start.empty() && !adopting_) {
      sink_.message(fmt::format("fleet {}: all {} instances already running", paths_->fleet, instances.size()));
      result_.outcome = UpResult::Outcome::already_running;
      return std::move(result_);
    }
    try {
      claim_for(instances);
    } catch (...) {
      forget_unborn_fleet();
      throw;
    }
    if (adopting_) take_over();
    // The definition is evaluated once per port in one pass, then validated
    // as a set: each instance is given an equal share of that pass.
    auto share = (request_.expand_ended - request_.expand_started) / std::max<std::size_t>(1, instances.size());
    for (const auto& i : to_start) {
      recorder().add_instance(i.index, i.container.name);
      recorder().record(i.index, observe::phase::expand, request_.expand_started + share * i.index,
                        request_.expand_started + share * (i.index + 1));
    }

    sink_.begin(to_start.size());
    if (request_.foreground && supervisor_running_)
      throw InputError(fmt::format("fleet '{}' already runs under its own supervisor; `up --foreground` starts a "
                                   "fleet of its own (`haco-fleet down --name {}` first)",
                                   paths_->fleet, paths_->fleet));
    try {
      if (!supervisor_running_) {
        // Before this process starts any thread (the rootfs engine and the
        // probes use threads).
        supervisor::SupervisorConfig config{*paths_,
                                            request_.definition,
                                            request_.restart,
                                            std::min<unsigned>(request_.parallel, to_start.size()),
                                            request_.stagger,
                                            request_.log_max_bytes,
                                            -1,
                                            adopting_ ? cgroup_to_take_over() : fleet_cgroup(),
                                            request_.foreground,
                                            request_.open_files.soft_before,
                                            adopting_};
        result_.supervisor = services_.supervisor.launch(config);
        started_supervisor_ = true;
      }
      check_interrupted();
      if (existing_ && !adopting_) {
        // What an `up` or a supervisor killed half-way left of these
        // instances (an overlay still mounted, a container never recorded).
        std::set<std::string> names;
        for (const auto& i : to_start) names.insert(i.container.name);
        services_.supervisor.clear_leftovers(*paths_, *existing_,
                                             [&](const std::string& n) { return names.count(n) > 0; });
      }
      prepare_rootfs(to_start);
      check_interrupted();
      launch_and_wait();
      check_interrupted();
    } catch (const Interrupted&) {
      return interrupted();
    } catch (...) {
      // The rootfs engine answers a cancel with its own error.
      if (interrupt_requested()) return interrupted();
      sink_.finish();
      undo();
      forget_unborn_fleet();
      throw;
    }
    recorder().finish();
    sink_.finish();
    keep_start_latencies(services_.supervisor, *paths_, recorder(), records_, sink_);

    result_.started = records_.size();
    result_.failures = failures_;
    if (request_.atomic && !failures_.empty()) {
      sink_.message(fmt::format("{} of {} instances failed; --atomic: removing the others this `up` started",
                                failures_.size(), records_.size()));
      undo();
      result_.atomic_rollback = true;
    }
    return std::move(result_);
  }

 private:
  observe::LatencyRecorder& recorder() { return *result_.latency; }

  bool interrupt_requested() const { return request_.interrupted && request_.interrupted->load(); }
  void check_interrupted() const {
    if (interrupt_requested()) throw Interrupted{};
  }

  // Where the supervisor puts the fleet's cgroups. Under systemd, a fleet
  // gets a unit of its own, or with --foreground lives in the caller's unit,
  // which must delegate its cgroup.
  cgroups::FleetCgroup fleet_cgroup() const {
    cgroups::FleetCgroup where{paths_->fleet, cgroups::detect_layout(), "", ""};
    // v1: below the caller's cgroup in each hierarchy already.
    if (request_.nest_in_caller_cgroup && where.layout != cgroups::Layout::v1_hybrid)
      return cgroups::own_cgroup_of_engine_task(paths_->fleet);
    if (where.layout != cgroups::Layout::v2_systemd) return where;
    if (request_.foreground) return cgroups::delegated_own_cgroup(paths_->fleet);
    where.unit = systemd::fleet_unit_name(paths_->fleet);
    return where;
  }

  // The fleet's supervisor is gone (killed, crashed): what it left is
  // cleared (supervisor::clear_for_takeover), and the new supervisor adopts the
  // instances that still run.
  void take_over() {
    if (request_.foreground)
      throw InputError(fmt::format("the supervisor of fleet '{}' is gone: `up` without --foreground gives it a new "
                                   "one (adopting its running instances), or `haco-fleet down --name {}` first",
                                   paths_->fleet, paths_->fleet));
    std::size_t alive = 0;
    for (const auto& r : existing_->instances) alive += state::is_alive(r.process) ? 1 : 0;
    sink_.message(fmt::format("fleet {}: its supervisor is gone; a new one takes over ({} of {} recorded instances "
                              "still run)",
                              paths_->fleet, alive, existing_->instances.size()));
    services_.supervisor.clear_for_takeover(*paths_, *existing_);
  }

  // Where the new supervisor of a fleet being taken over goes: the recorded
  // cgroups, and under systemd the fleet's unit while its instances keep it
  // active (a fresh unit once it ended).
  cgroups::FleetCgroup cgroup_to_take_over() const {
    const cgroups::FleetCgroup& recorded = existing_->cgroup;
    if (recorded.layout != cgroups::detect_layout()) return fleet_cgroup();
    if (recorded.layout == cgroups::Layout::v2_systemd &&
        (recorded.unit.empty() || !systemd::unit_is_active(recorded.unit)))
      return fleet_cgroup();
    return recorded;
  }

  // Records, under the registry lock, what the fleet holds once this `up` is
  // done: the instances of the definition and those already recorded that it
  // does not list. A clash with another fleet is an InputError naming it.
  void claim_for(const std::vector<InstanceSpec>& wanted) {
    registry::FleetClaims claims{paths_->fleet, {}};
    std::set<std::string> listed;
    for (const auto& i : wanted) {
      claims.instances.push_back(registry::claim_of(i));
      listed.insert(i.container.name);
    }
    if (existing_)
      for (const auto& r : existing_->instances)
        if (!listed.count(r.name())) claims.instances.push_back(registry::claim_of(r.spec));
    registry::claim(*paths_, claims);
  }

  // Which instances this `up` starts: all of them for a new fleet; for a
  // running one, those not running. A changed definition is refused.
  std::vector<InstanceSpec> select_instances(const std::vector<InstanceSpec>& wanted) {
    auto existing = state::load_state(*paths_);
    if (existing) {
      bool supervisor_alive = state::is_alive(existing->supervisor) && services_.supervisor.answers(*paths_);
      // The supervisor died: a new one takes over every recorded instance
      // (those still running are adopted, not started twice; the others'
      // cgroups and mounts are cleared first and they start again).
      adopting_ = !supervisor_alive;
    }
    supervisor_running_ = existing.has_value() && !adopting_;
    if (existing) had_instances_ = !existing->instances.empty();
    existing_ = existing;
    std::vector<InstanceSpec> to_start;
    std::vector<std::string> changed;
    std::size_t running = 0;
    for (const auto& instance : wanted) {
      const InstanceRecord* record = existing ? existing->find(instance.container.name) : nullptr;
      bool active = record && (adopting_ ? state::is_alive(record->process)
                                         : (record->state == state::InstanceState::running ||
                                            record->state == state::InstanceState::starting ||
                                            record->state == state::InstanceState::restarting));
      if (active && record->spec_hash != state::spec_hash(instance)) {
        changed.push_back(instance.container.name);
      } else if (active) {
        ++running;
      } else {
        to_start.push_back(instance);
      }
    }
    if (!changed.empty()) {
      std::string names;
      for (const auto& n : changed) names += (names.empty() ? "" : ", ") + n;
      throw InputError(fmt::format("the definition of {} changed since {} started (nothing was started); run "
                                   "`haco-fleet down --name {}` first, or use another --name",
                                   names, changed.size() == 1 ? "it was" : "they were", paths_->fleet));
    }
    if (running > 0)
      sink_.message(fmt::format("fleet {}: {} instances already running, starting the {} missing", paths_->fleet,
                                running, to_start.size()));
    return to_start;
  }

  // The bootstrap blocks of the instances whose rootfs does not exist yet:
  // served by the rootfs engine when every one of them is the tar + chown
  // idiom (docs/bootstrap.md), run as written otherwise. Says which, and why,
  // in one line. Returns the engine's plan of each instance it serves.
  std::map<std::string, fleet::BootstrapPlan> plan_bootstrap_blocks(const std::vector<InstanceSpec>& instances) {
    std::vector<const ContainerSpec*> blocks;
    for (const auto& i : instances)
      if (i.container.bootstrap.kind == BootstrapKind::block && !services_.rootfs.exists(i.container.rootfs))
        blocks.push_back(&i.container);
    if (blocks.empty()) return {};
    if (request_.bootstrap_as_written) {
      sink_.message(fmt::format("bootstrap: the block runs as written, one command at a time, for {} instance{} "
                                "(--bootstrap as-written)",
                                blocks.size(), blocks.size() == 1 ? "" : "s"));
      return {};
    }
    std::map<std::string, fleet::BootstrapPlan> plans;
    for (const ContainerSpec* c : blocks) {
      fleet::BootstrapPlanResult result;
      if (!c->bootstrap.recording_error.empty())
        result.reason = "the block needs what its commands print (" + c->bootstrap.recording_error + ")";
      else
        result = fleet::plan_bootstrap(c->bootstrap.commands, *c);
      if (!result.plan) {
        sink_.message(fmt::format("bootstrap: the block runs as written, one command at a time, for the whole "
                                  "fleet: {}: {}",
                                  c->name, printable(result.reason)));
        return {};
      }
      plans.emplace(c->name, std::move(*result.plan));
    }
    std::set<std::string> archives;
    std::set<std::string> nodes;
    for (const auto& [name, plan] : plans) {
      archives.insert(plan.archive);
      for (const auto& node : plan.device_nodes) nodes.insert(node.path.substr(plan.root.size() + 1));
    }
    sink_.message(fmt::format("bootstrap: the block's mkdir + tar + chown -R served by the rootfs engine for {} "
                              "instance{} ({} archive{}, extracted once; owners shifted per file into each "
                              "instance's range)",
                              plans.size(), plans.size() == 1 ? "" : "s", archives.size(),
                              archives.size() == 1 ? "" : "s"));
    if (!nodes.empty()) {
      std::string list;
      for (const auto& n : nodes) list += (list.empty() ? "" : ", ") + n;
      sink_.message("bootstrap: mknod " + printable(list) +
                    " not made: device nodes in a rootfs are never usable (docs/security.md); /dev comes from the "
                    "runtime");
    }
    return plans;
  }

  void prepare_rootfs(const std::vector<InstanceSpec>& instances) {
    const std::map<std::string, fleet::BootstrapPlan> planned = plan_bootstrap_blocks(instances);
    std::vector<rootfs::InstanceRootfs> images;
    for (const auto& i : instances) {
      InstanceRecord record;
      record.spec = i;
      record.spec_hash = state::spec_hash(i);
      record.log_path = paths_->instance_log(i.container.name);
      // What `reload` evaluates the definition with again.
      record.expansion = state::RecordedExpansion{request_.expansion.port_env_names,
                                                  request_.expansion.default_pids_max,
                                                  request_.expansion.allow_shared_rootfs};
      records_.push_back(std::move(record));
      const auto& c = i.container;
      if (c.bootstrap.kind == BootstrapKind::tarball)
        images.push_back({c.name, c.rootfs, c.bootstrap.archive_path, c.uid_map, c.gid_map,
                          rootfs::OwnershipPolicy::shift});
      else if (c.bootstrap.kind == BootstrapKind::oci)
        images.push_back({c.name, c.rootfs, "", c.uid_map, c.gid_map, rootfs::OwnershipPolicy::shift,
                          c.bootstrap.image});
      else if (auto plan = planned.find(c.name); plan != planned.end())
        images.push_back({c.name, c.rootfs, plan->second.archive, c.uid_map, c.gid_map,
                          rootfs::OwnershipPolicy::shift});
    }
    if (!images.empty()) {
      rootfs::PrepareOptions prepare;
      prepare.strategy = request_.strategy;
      prepare.data_root = request_.data_root;
      prepare.parallel = request_.parallel;
      prepare.cancel = request_.interrupted;
      auto start = Clock::now();
      auto prepared = services_.rootfs.prepare_images(images, prepare);
      for (auto& p : prepared) {
        auto* record = find_record(p.instance);
        if (!record) continue;
        recorder().record(record->spec.index, observe::phase::rootfs, start, start + p.elapsed);
        sink_.step("rootfs", p.instance, p.elapsed);
        record->rootfs = std::move(p);
      }
    }
    for (auto& record : records_) {
      const auto& c = record.spec.container;
      if (c.bootstrap.kind != BootstrapKind::shell && c.bootstrap.kind != BootstrapKind::block) continue;
      if (planned.count(c.name)) continue;
      check_interrupted();
      auto start = Clock::now();
      rootfs::PreparedRootfs prepared;
      prepared.instance = c.name;
      prepared.rootfs = c.rootfs;
      try {
        if (services_.rootfs.remove_incomplete(c))
          sink_.message(c.name + ": rootfs left incomplete by an interrupted run: its bootstrap runs again");
        prepared.reused = services_.rootfs.exists(c.rootfs);
        if (!prepared.reused) {
          // Recorded before it runs, so that a partial tree is removed on
          // failure.
          record.rootfs = prepared;
          // A shell script gets the definition's environ too; a block is the
          // definition evaluated again, and sees the ENV `expand` gave it.
          services_.rootfs.bootstrap(record.spec,
                                     c.bootstrap.kind == BootstrapKind::shell
                                         ? shell_bootstrap_environment(request_.expansion, record.spec)
                                         : fleet::port_environment(request_.expansion, record.spec.port),
                                     request_.interrupted);
        }
        prepared.elapsed = Clock::now() - start;
        record.rootfs = prepared;
        recorder().record(record.spec.index, observe::phase::rootfs, start, Clock::now());
        sink_.step("rootfs", c.name, prepared.elapsed);
      } catch (const Error& e) {
        recorder().fail(record.spec.index, observe::phase::rootfs, e.what());
        fail(c.name, std::string("bootstrap: ") + e.what());
      }
    }
  }

  UpResult interrupted() {
    sink_.message("interrupted: stopping and removing what this `up` started");
    undo();
    forget_unborn_fleet();
    sink_.finish();
    result_.outcome = UpResult::Outcome::interrupted;
    result_.started = records_.size();
    result_.failures = failures_;
    return std::move(result_);
  }

  // A new fleet whose supervisor never started leaves nothing behind, not
  // even its claims.
  void forget_unborn_fleet() {
    if (supervisor_running_ || started_supervisor_ || std::filesystem::exists(paths_->state_file())) return;
    std::error_code ec;
    std::filesystem::remove(paths_->claims_file(), ec);
    std::filesystem::remove(paths_->lock_file(), ec);
    std::filesystem::remove(paths_->supervisor_log(), ec);
    std::filesystem::remove(paths_->dir(), ec);
  }

  InstanceRecord* find_record(const std::string& name) {
    for (auto& r : records_)
      if (r.name() == name) return &r;
    return nullptr;
  }

  void fail(const std::string& name, const std::string& reason) { record_failure(failures_, sink_, name, reason); }

  // Sends the start request and follows the supervisor's answers, probing
  // each started instance until it is ready.
  void launch_and_wait() {
    LaunchWait how{*paths_, services_.supervisor, services_.probers, sink_};
    how.timeout = request_.timeout;
    how.no_wait = request_.no_wait;
    how.interrupted = request_.interrupted;
    how.recorder = &recorder();
    if (request_.foreground)
      how.on_ready = [this](std::size_t ready, std::size_t expected) {
        sink_.status(fmt::format("starting: {}/{} ready", ready, expected));
      };
    ops::launch_and_wait(how, records_, failures_);
  }

  // Stops and removes what this `up` started: its instances, their cgroups
  // and the rootfs trees it created; the supervisor and the fleet's state too
  // when the fleet had nothing else.
  void undo() {
    supervisor::TeardownOptions teardown;
    teardown.timeout = std::chrono::milliseconds(5000);
    try {
      services_.supervisor.remove(*paths_, records_, teardown, supervisor::TreePurge::created);
      if (started_supervisor_ && !had_instances_) services_.supervisor.shutdown(*paths_, teardown);
    } catch (const Error& e) {
      sink_.error(printable(e.what(), LineBreaks::keep));
    }
  }

  const UpRequest& request_;
  UpServices services_;
  Sink& sink_;
  UpResult result_;
  std::optional<state::FleetPaths> paths_;  // once the fleet's name is known and checked
  std::vector<InstanceRecord> records_;
  std::map<std::string, std::string> failures_;
  bool supervisor_running_ = false;
  bool started_supervisor_ = false;
  bool had_instances_ = false;
  bool adopting_ = false;                      // the recorded supervisor is gone: a new one takes over
  std::optional<state::FleetState> existing_;  // the fleet's state when its supervisor runs
};

}  // namespace

std::string UpResult::status_line() const {
  std::size_t failed = failures.size();
  std::string text = fmt::format("{}/{} ready", started - failed, started);
  if (failed) text += fmt::format(", {} failed", failed);
  return text;
}

dsl::Environment shell_bootstrap_environment(const fleet::ExpandOptions& expansion, const InstanceSpec& instance) {
  dsl::Environment base = expansion.base_environment;
  for (const auto& kv : instance.container.environment) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) base[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return fleet::port_environment(std::move(base), instance.port, expansion.port_env_names);
}

UpResult up(const UpRequest& request, UpServices services) { return Up(request, std::move(services)).run(); }

}  // namespace haco::ops
