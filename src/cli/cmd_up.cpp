// haco-fleet up: expand, start the fleet's supervisor, prepare every rootfs,
// launch through the supervisor's spawners, wait until every instance is
// ready, report latency. Also the hidden `supervise` subcommand that the
// supervisor process runs.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <optional>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/expand_options.hpp"
#include "cli/option_ranges.hpp"
#include "haco/dsl.hpp"
#include "haco/error.hpp"
#include "haco/bootstrap_plan.hpp"
#include "haco/fault_point.hpp"
#include "haco/fleet.hpp"
#include "haco/layout.hpp"
#include "haco/observe.hpp"
#include "haco/open_files.hpp"
#include "haco/printable.hpp"
#include "haco/rootfs.hpp"
#include "haco/shell_command.hpp"
#include "haco/spec_json.hpp"
#include "haco/registry.hpp"
#include "haco/state.hpp"
#include "haco/supervisor.hpp"
#include "haco/systemd_unit.hpp"

namespace haco::cli {
namespace {

namespace asio = boost::asio;
using observe::Clock;
using state::InstanceRecord;

constexpr int kExitInterrupted = 130;

struct UpOptions {
  ExpandCommandOptions expand;
  unsigned parallel = 4;
  unsigned stagger_ms = 0;
  std::string restart = "no";
  std::string ready = "tcp";
  double timeout_s = 60;
  bool no_wait = false;
  bool atomic = false;
  bool json = false;
  std::string trace;
  std::string rootfs_strategy = "overlay";
  std::string bootstrap = "auto";
  std::uint64_t log_max_bytes = 16u << 20;
  bool foreground = false;
  bool allow_host_root = false;
};

// Ctrl-C (and SIGTERM) during `up`: noted here, acted on by the main flow,
// which stops and removes what this `up` started.
std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted.store(true); }

void catch_interrupts() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

struct Interrupted {};

void check_interrupted() {
  if (g_interrupted.load()) throw Interrupted{};
}

bool rootfs_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && !std::filesystem::is_empty(path);
}

// Bad input found before anything starts: every definition must say where
// its rootfs comes from.
void check_rootfs_sources(const std::vector<InstanceSpec>& instances) {
  std::vector<std::string> problems;
  for (const auto& i : instances) {
    const auto& c = i.container;
    if (c.bootstrap.kind == BootstrapKind::none && !rootfs_exists(c.rootfs))
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
void check_host_root(const std::vector<InstanceSpec>& instances, bool allowed) {
  auto names = fleet::instances_running_as_host_root(instances);
  if (names.empty()) return;
  std::string listed = "'" + names.front() + "'";
  if (names.size() > 1) listed += fmt::format(" and {} other instance{}", names.size() - 1, names.size() > 2 ? "s" : "");
  if (!allowed)
    throw InputError(fmt::format("{} {} no user namespace: {} root would be the host's root (nothing was started); "
                                 "pass --allow-host-root to accept this",
                                 listed, names.size() == 1 ? "has" : "have", names.size() == 1 ? "its" : "their"));
  std::fprintf(stderr, "haco-fleet: warning: %s %s no user namespace: %s root is the host's root (--allow-host-root)\n",
               listed.c_str(), names.size() == 1 ? "has" : "have", names.size() == 1 ? "its" : "their");
}

// The ENV of a bootstrap script: the one the definition was expanded with
// for the instance's port, plus the definition's environ (the port names
// keep the port).
dsl::Environment shell_bootstrap_environment(const fleet::ExpandOptions& expansion, const InstanceSpec& instance) {
  dsl::Environment base = expansion.base_environment;
  for (const auto& kv : instance.container.environment) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) base[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return fleet::port_environment(std::move(base), instance.port, expansion.port_env_names);
}

// The definition's own shell bootstrap, run once when the rootfs is missing;
// Ctrl-C stops it (its whole process group).
void run_shell_bootstrap(const InstanceSpec& instance, const fleet::ExpandOptions& expansion) {
  ShellOptions options;
  options.environment.emplace();
  for (const auto& [k, v] : shell_bootstrap_environment(expansion, instance))
    options.environment->push_back(k + "=" + v);
  options.cancel = &g_interrupted;
  std::fflush(nullptr);
  ShellResult result = run_shell(instance.container.bootstrap.code, options);
  if (result.cancelled) throw Error("the bootstrap script was interrupted");
  if (result.exit_code != 0)
    throw Error(fmt::format("the bootstrap script failed ({})",
                            result.exit_code > 128 ? "signal " + std::to_string(result.exit_code - 128)
                                                   : "exit " + std::to_string(result.exit_code)));
}

rootfs::Strategy parse_strategy(const std::string& text) {
  if (text == "overlay") return rootfs::Strategy::overlay;
  if (text == "extract") return rootfs::Strategy::extract;
  throw InputError("--rootfs '" + text + "': expected overlay or extract");
}

class Up {
 public:
  Up(const GlobalOptions& global, const UpOptions& options) : global_(global), options_(options) {}

  int run() {
    // A probe socket per instance here, a pidfd and a pipe per instance in
    // the supervisor (which inherits this limit, and raises its own too when it
    // runs as a unit): the soft limit goes up to the hard limit first. The
    // containers get back the limit found here.
    open_files_ = raise_open_file_limit();
    auto restart = supervisor::parse_restart_policy(options_.restart);
    ready_ = observe::parse_ready_spec(options_.ready);
    auto strategy = parse_strategy(options_.rootfs_strategy);

    auto expand_start = Clock::now();
    auto expanded = expand_from_options(options_.expand);
    auto expand_end = Clock::now();
    expansion_ = expanded.options;
    check_host_root(expanded.instances, options_.allow_host_root);
    check_rootfs_sources(expanded.instances);
    check_open_file_need(supervisor::supervisor_open_files_needed(expanded.instances.size(), options_.parallel),
                         open_files_, fmt::format("a fleet of {} instances", expanded.instances.size()));
    paths_.emplace(global_.state_root, global_.data_root, expanded.fleet_name);
    layout::DataRoot(global_.data_root).make_directories();

    // Ctrl-C while waiting for the lock simply ends `up`: nothing started.
    auto lock = state::FleetLock::acquire(*paths_, true);
    catch_interrupts();
    auto to_start = select_instances(expanded.instances);
    if (to_start.empty() && !adopting_) {
      say(fmt::format("fleet {}: all {} instances already running", paths_->fleet, expanded.instances.size()));
      return kExitOk;
    }
    try {
      claim_for(expanded.instances);
    } catch (...) {
      forget_unborn_fleet();
      throw;
    }
    if (adopting_) take_over();
    // The definition is evaluated once per port in one pass, then validated
    // as a set: each instance is given an equal share of that pass.
    auto share = (expand_end - expand_start) / std::max<std::size_t>(1, expanded.instances.size());
    for (const auto& i : to_start) {
      recorder_.add_instance(i.index, i.container.name);
      recorder_.record(i.index, observe::phase::expand, expand_start + share * i.index,
                       expand_start + share * (i.index + 1));
    }

    progress_ = std::make_unique<observe::ProgressReporter>(
        std::cerr, observe::ProgressOptions{observe::progress_style_for(STDERR_FILENO), "up",
                                            {"rootfs", "started", "ready"}, to_start.size(),
                                            std::chrono::milliseconds(100), observe::terminal_width(STDERR_FILENO)});
    if (options_.foreground && supervisor_running_)
      throw InputError(fmt::format("fleet '{}' already runs under its own supervisor; `up --foreground` starts a "
                                   "fleet of its own (`haco-fleet down --name {}` first)",
                                   paths_->fleet, paths_->fleet));
    try {
      if (!supervisor_running_) {
        // Before this process starts any thread (the rootfs engine and the
        // probes use threads).
        supervisor::SupervisorConfig config{*paths_,
                                            std::filesystem::absolute(options_.expand.definition),
                                            restart,
                                            std::min<unsigned>(options_.parallel, to_start.size()),
                                            std::chrono::milliseconds(options_.stagger_ms),
                                            options_.log_max_bytes,
                                            -1,
                                            adopting_ ? cgroup_to_take_over() : fleet_cgroup(),
                                            options_.foreground,
                                            open_files_.soft_before,
                                            adopting_};
        supervisor_ = supervisor::start_supervisor(config);
        started_supervisor_ = true;
      }
      check_interrupted();
      if (existing_ && !adopting_) {
        // What an `up` or a supervisor killed half-way left of these
        // instances (an overlay still mounted, a container never recorded).
        std::set<std::string> names;
        for (const auto& i : to_start) names.insert(i.container.name);
        supervisor::clear_leftovers(*paths_, *existing_, [&](const std::string& n) { return names.count(n) > 0; });
      }
      prepare_rootfs(to_start, strategy);
      check_interrupted();
      launch_and_wait();
      check_interrupted();
    } catch (const Interrupted&) {
      return interrupted();
    } catch (...) {
      // The rootfs engine answers a cancel with its own error.
      if (g_interrupted.load()) return interrupted();
      progress_->finish();
      undo();
      forget_unborn_fleet();
      throw;
    }
    recorder_.finish();
    progress_->finish();

    if (options_.atomic && !failures_.empty()) {
      say(fmt::format("{} of {} instances failed; --atomic: removing the others this `up` started",
                      failures_.size(), records_.size()));
      undo();
    }
    report();
    if (options_.foreground) {
      if (options_.atomic && !failures_.empty()) return kExitFailed;
      return stay_in_foreground();
    }
    return failures_.empty() ? kExitOk : kExitFailed;
  }

 private:
  // Where the supervisor puts the fleet's cgroups. Under systemd, a fleet
  // gets a unit of its own, or with --foreground lives in the caller's unit,
  // which must delegate its cgroup.
  cgroups::FleetCgroup fleet_cgroup() const {
    cgroups::FleetCgroup where{paths_->fleet, cgroups::detect_layout(), "", ""};
    if (where.layout != cgroups::Layout::v2_systemd) return where;
    if (options_.foreground) return cgroups::delegated_own_cgroup(paths_->fleet);
    where.unit = systemd::fleet_unit_name(paths_->fleet);
    return where;
  }

  // The fleet's supervisor is gone (killed, crashed): what it left is
  // cleared (supervisor::clear_for_takeover), and the new supervisor adopts the
  // instances that still run.
  void take_over() {
    if (options_.foreground)
      throw InputError(fmt::format("the supervisor of fleet '{}' is gone: `up` without --foreground gives it a new "
                                   "one (adopting its running instances), or `haco-fleet down --name {}` first",
                                   paths_->fleet, paths_->fleet));
    std::size_t alive = 0;
    for (const auto& r : existing_->instances) alive += state::is_alive(r.process) ? 1 : 0;
    say(fmt::format("fleet {}: its supervisor is gone; a new one takes over ({} of {} recorded instances still run)",
                    paths_->fleet, alive, existing_->instances.size()));
    supervisor::clear_for_takeover(*paths_, *existing_);
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

  std::string status_line() const {
    std::size_t failed = failures_.size();
    std::string text = fmt::format("{}/{} ready", records_.size() - failed, records_.size());
    if (failed) text += fmt::format(", {} failed", failed);
    return text;
  }

  // `up --foreground` after the fleet came up: READY=1 to systemd, then
  // wait. SIGTERM or Ctrl-C is `down` without --purge; a supervisor that
  // ends on its own (after `down` from elsewhere, or a crash) ends this too.
  int stay_in_foreground() {
    systemd::notify("READY=1\nSTATUS=" + status_line());
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, supervisor_.pid, 0)));
    check_sys(pidfd.get(), "pidfd_open", "supervisor");
    if (!state::is_alive(supervisor_)) return supervisor_gone();
    say(fmt::format("fleet {}: {}; in the foreground until SIGTERM or Ctrl-C", paths_->fleet, status_line()));
    for (;;) {
      pollfd watch{pidfd.get(), POLLIN, 0};
      int n = ::poll(&watch, 1, 200);
      if (n < 0 && errno != EINTR) throw Error::from_errno("poll", "supervisor pidfd", errno);
      if (g_interrupted.load()) break;
      if (n > 0) {
        ::waitpid(supervisor_.pid, nullptr, WNOHANG);
        return supervisor_gone();
      }
    }
    systemd::notify("STOPPING=1\nSTATUS=stopping the fleet");
    say(fmt::format("fleet {}: stopping (down without --purge)", paths_->fleet));
    supervisor::TeardownOptions teardown;
    teardown.progress = [this](std::string_view step) { say(std::string(step)); };
    supervisor::teardown_fleet(*paths_, teardown);
    ::waitpid(supervisor_.pid, nullptr, 0);
    return kExitOk;
  }

  int supervisor_gone() {
    if (!std::filesystem::exists(paths_->state_file())) {
      say(fmt::format("fleet {}: taken down", paths_->fleet));
      return kExitOk;
    }
    std::fprintf(stderr, "haco-fleet: the supervisor of fleet '%s' exited (see %s)\n", paths_->fleet.c_str(),
                 paths_->supervisor_log().c_str());
    return kExitFailed;
  }

  // Records, under the registry lock, what the fleet holds once this `up` is
  // done: the instances of the definition and those already recorded that it
  // does not list. A clash with another fleet is an InputError naming it.
  void claim_for(const std::vector<InstanceSpec>& wanted) {
    registry::FleetClaims claims{paths_->fleet, claims_of(wanted)};
    std::set<std::string> listed;
    for (const auto& i : wanted) listed.insert(i.container.name);
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
      bool supervisor_alive = state::is_alive(existing->supervisor) && supervisor::ControlClient::connect(*paths_);
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
      say(fmt::format("fleet {}: {} instances already running, starting the {} missing", paths_->fleet, running,
                      to_start.size()));
    return to_start;
  }

  // The bootstrap blocks of the instances whose rootfs does not exist yet:
  // served by the rootfs engine when every one of them is the tar + chown
  // idiom (docs/bootstrap.md), run as written otherwise. Says which, and why,
  // in one line. Returns the engine's plan of each instance it serves.
  std::map<std::string, fleet::BootstrapPlan> plan_bootstrap_blocks(const std::vector<InstanceSpec>& instances) {
    std::vector<const ContainerSpec*> blocks;
    for (const auto& i : instances)
      if (i.container.bootstrap.kind == BootstrapKind::block && !rootfs_exists(i.container.rootfs))
        blocks.push_back(&i.container);
    if (blocks.empty()) return {};
    if (options_.bootstrap == "as-written") {
      say(fmt::format("bootstrap: the block runs as written, one command at a time, for {} instance{} "
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
        say(fmt::format("bootstrap: the block runs as written, one command at a time, for the whole fleet: "
                        "{}: {}",
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
    say(fmt::format("bootstrap: the block's mkdir + tar + chown -R served by the rootfs engine for {} instance{} "
                    "({} archive{}, extracted once; owners shifted per file into each instance's range)",
                    plans.size(), plans.size() == 1 ? "" : "s", archives.size(), archives.size() == 1 ? "" : "s"));
    if (!nodes.empty()) {
      std::string list;
      for (const auto& n : nodes) list += (list.empty() ? "" : ", ") + n;
      say("bootstrap: mknod " + printable(list) +
          " not made: device nodes in a rootfs are never usable (docs/security.md); /dev comes from the runtime");
    }
    return plans;
  }

  void prepare_rootfs(const std::vector<InstanceSpec>& instances, rootfs::Strategy strategy) {
    const std::map<std::string, fleet::BootstrapPlan> planned = plan_bootstrap_blocks(instances);
    std::vector<rootfs::InstanceRootfs> images;
    std::map<std::string, const InstanceSpec*> by_name;
    for (const auto& i : instances) by_name[i.container.name] = &i;
    for (const auto& i : instances) {
      InstanceRecord record;
      record.spec = i;
      record.spec_hash = state::spec_hash(i);
      record.log_path = paths_->instance_log(i.container.name);
      records_.push_back(std::move(record));
      const auto& c = i.container;
      if (c.bootstrap.kind == BootstrapKind::tarball)
        images.push_back({c.name, c.rootfs, c.bootstrap.archive_path, c.uid_map, c.gid_map,
                          rootfs::OwnershipPolicy::shift});
      else if (auto plan = planned.find(c.name); plan != planned.end())
        images.push_back({c.name, c.rootfs, plan->second.archive, c.uid_map, c.gid_map,
                          rootfs::OwnershipPolicy::shift});
    }
    if (!images.empty()) {
      rootfs::PrepareOptions prepare;
      prepare.strategy = strategy;
      prepare.data_root = global_.data_root;
      prepare.parallel = options_.parallel;
      prepare.cancel = &g_interrupted;
      auto start = Clock::now();
      auto prepared = rootfs::prepare_fleet(images, prepare);
      for (auto& p : prepared) {
        auto* record = find_record(p.instance);
        if (!record) continue;
        recorder_.record(record->spec.index, observe::phase::rootfs, start, start + p.elapsed);
        progress_->step("rootfs", p.instance, p.elapsed);
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
        if (rootfs::rootfs_marked_incomplete(global_.data_root, c.name) && rootfs_exists(c.rootfs)) {
          // Left by an `up` that died while its bootstrap ran: made again.
          rootfs::remove_tree(c.rootfs);
          say(c.name + ": rootfs left incomplete by an interrupted run: its bootstrap runs again");
        }
        prepared.reused = rootfs_exists(c.rootfs);
        if (!prepared.reused) {
          // Recorded before it runs, so a partial tree is removed on failure;
          // marked, so one left by a crash is not reused.
          record.rootfs = prepared;
          rootfs::mark_rootfs_incomplete(global_.data_root, c.name);
          if (c.bootstrap.kind == BootstrapKind::shell) {
            run_shell_bootstrap(record.spec, expansion_);
          } else {
            dsl::Evaluator evaluator;
            // The ENV `expand` gave this port: the block sees what the
            // definition saw when its instance was made.
            evaluator.run_bootstrap_block(c.source_file, fleet::port_environment(expansion_, record.spec.port),
                                          &g_interrupted);
          }
          if (!rootfs_exists(c.rootfs)) throw Error("the bootstrap did not create " + c.rootfs);
          fault_point("bootstrap-ran");
          rootfs::sync_filesystems({c.rootfs});
          rootfs::mark_rootfs_complete(global_.data_root, c.name);
        }
        prepared.elapsed = Clock::now() - start;
        record.rootfs = prepared;
        recorder_.record(record.spec.index, observe::phase::rootfs, start, Clock::now());
        progress_->step("rootfs", c.name, prepared.elapsed);
      } catch (const Error& e) {
        recorder_.fail(record.spec.index, observe::phase::rootfs, e.what());
        fail(c.name, std::string("bootstrap: ") + e.what());
      }
    }
  }

  int interrupted() {
    progress_->message("interrupted: stopping and removing what this `up` started");
    undo();
    forget_unborn_fleet();
    progress_->finish();
    return kExitInterrupted;
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

  // A reason can carry what a container wrote (its log, its init's error):
  // kept only in printable form, for the terminal and for --json alike.
  void fail(const std::string& name, const std::string& reason) {
    if (failures_.count(name)) return;
    std::string shown = printable(reason, LineBreaks::keep);
    failures_[name] = shown;
    progress_->failed(name, shown);
  }

  // Sends the start request and follows the supervisor's answers, probing
  // each started instance until it is ready.
  void launch_and_wait() {
    nlohmann::json batch = nlohmann::json::array();
    for (const auto& r : records_)
      if (!failures_.count(r.name())) batch.push_back(state::to_json(r));
    if (batch.empty()) return;
    auto client = supervisor::ControlClient::connect(*paths_);
    if (!client) throw Error("the supervisor of fleet '" + paths_->fleet + "' is not listening");
    client->send({{"op", "start"}, {"instances", batch}});

    asio::io_context io;
    asio::local::stream_protocol::socket socket(io, asio::local::stream_protocol(), client->release_fd().release());
    observe::ReadinessProber prober(io);
    asio::steady_timer ticker(io);
    asio::streambuf input;
    auto deadline = Clock::now() + std::chrono::milliseconds(std::lround(options_.timeout_s * 1000));
    std::size_t expected = batch.size();
    std::size_t settled = 0;  // ready or failed
    bool launches_done = false;

    auto maybe_finish = [&] {
      if (launches_done && (options_.no_wait || settled >= expected)) io.stop();
    };
    auto on_ready = [&](observe::InstanceId id, const observe::ProbeResult& result) {
      auto* record = record_by_index(id);
      ++settled;
      if (auto exited = exit_reasons_.find(id); !result.ready && exited != exit_reasons_.end()) {
        recorder_.fail(id, observe::phase::exec_to_ready, exited->second, result.finished_at);
        fail(record->name(), exited->second);
      } else if (result.ready) {
        recorder_.end(id, observe::phase::exec_to_ready, result.finished_at);
        progress_->step("ready", record->name(), result.finished_at - exec_done_[id]);
        ++ready_count_;
        if (options_.foreground)
          systemd::notify(fmt::format("STATUS=starting: {}/{} ready", ready_count_, expected));
      } else {
        recorder_.fail(id, observe::phase::exec_to_ready, result.error, result.finished_at);
        fail(record->name(), result.error);
      }
      maybe_finish();
    };
    auto on_event = [&](const nlohmann::json& event) {
      if (event.value("done", false)) {
        // A request the supervisor refused as a whole: nothing of it starts.
        if (auto error = event.value("error", std::string()); !error.empty())
          for (const auto& r : records_)
            if (r.process.pid <= 0 && !failures_.count(r.name())) {
              ++settled;
              fail(r.name(), "the supervisor refused to start it: " + error);
            }
        launches_done = true;
        fault_point("up-started");
        maybe_finish();
        return;
      }
      auto name = event.value("instance", std::string());
      auto* record = find_record(name);
      if (!record) return;
      auto id = record->spec.index;
      auto kind = event.value("event", std::string());
      if (kind == "exited") {
        // Ended before it was ready, and the restart policy does not bring it
        // back: fail now with what it wrote, not at the timeout.
        if (event.value("restarting", false) || !awaiting_ready(id)) return;
        exit_reasons_[id] = "exited (" + event.value("exit", std::string("?")) + ") before it was ready" +
                            log_tail(record->log_path);
        prober.cancel(id);
        return;
      }
      if (kind == "started") {
        Clock::time_point cloned{std::chrono::nanoseconds(event.at("clone_started_ns").get<std::int64_t>())};
        Clock::time_point exec_done{std::chrono::nanoseconds(event.at("exec_done_ns").get<std::int64_t>())};
        record->process = {event.at("pid").get<pid_t>(), event.at("start_time").get<std::uint64_t>()};
        recorder_.record(id, observe::phase::clone_to_exec, cloned, exec_done);
        progress_->step("started", name, exec_done - cloned);
        exec_done_[id] = exec_done;
        if (options_.no_wait) return;
        recorder_.begin(id, observe::phase::exec_to_ready, exec_done);
        try {
          UniqueFd netns;
          if (record->spec.container.has_namespace(Namespace::net))
            netns = observe::open_netns(record->process.pid);
          prober.watch(id, observe::probe_spec(ready_, record->spec.port, netns.get()), deadline, on_ready);
        } catch (const Error& e) {
          ++settled;
          recorder_.fail(id, observe::phase::exec_to_ready, e.what());
          fail(name, e.what());
        }
      } else {
        ++settled;
        recorder_.fail(id, observe::phase::clone_to_exec, event.value("error", std::string("failed")));
        fail(name, event.value("error", std::string("failed to start")));
      }
      maybe_finish();
    };
    std::function<void()> read_next = [&] {
      asio::async_read_until(socket, input, '\n', [&](const boost::system::error_code& ec, std::size_t size) {
        if (ec) {
          if (ec != asio::error::operation_aborted && !launches_done) {
            for (const auto& r : records_)
              if (r.process.pid <= 0 && !failures_.count(r.name())) fail(r.name(), "the supervisor went away");
            launches_done = true;
            settled = expected;
            io.stop();
          }
          return;
        }
        std::string line(asio::buffers_begin(input.data()), asio::buffers_begin(input.data()) + size);
        input.consume(size);
        on_event(nlohmann::json::parse(line));
        read_next();
      });
    };
    std::function<void()> tick = [&] {
      ticker.expires_after(std::chrono::milliseconds(50));
      ticker.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        progress_->tick();
        if (g_interrupted.load()) {
          io.stop();
          return;
        }
        // Launches that never answered count against the same deadline.
        if (Clock::now() > deadline + std::chrono::seconds(5) && !launches_done) {
          for (const auto& r : records_)
            if (r.process.pid <= 0) fail(r.name(), "not started before the timeout");
          io.stop();
          return;
        }
        tick();
      });
    };
    read_next();
    tick();
    io.run();
    prober.cancel_all();
  }

  bool awaiting_ready(observe::InstanceId id) const {
    return exec_done_.count(id) && !exit_reasons_.count(id) && !options_.no_wait;
  }

  // The last lines an instance wrote, for a failure message.
  static std::string log_tail(const std::string& path) {
    std::ifstream in(path);
    std::deque<std::string> lines;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      lines.push_back(line);
      if (lines.size() > 3) lines.pop_front();
    }
    if (lines.empty()) return "";
    std::string text = "; its log (" + path + ") ends with:";
    for (const auto& l : lines) text += "\n      " + printable(l);
    return text;
  }

  InstanceRecord* record_by_index(std::size_t index) {
    for (auto& r : records_)
      if (r.spec.index == index) return &r;
    return nullptr;
  }

  // Stops and removes what this `up` started: its instances, their cgroups
  // and the rootfs trees it created; the supervisor and the fleet's state too
  // when the fleet had nothing else.
  void undo() {
    supervisor::TeardownOptions teardown;
    teardown.timeout = std::chrono::milliseconds(5000);
    try {
      supervisor::teardown_instances(*paths_, records_, teardown, true);
      if (started_supervisor_ && !had_instances_) supervisor::teardown_fleet(*paths_, teardown);
    } catch (const Error& e) {
      std::fprintf(stderr, "haco-fleet: %s\n", printable(e.what(), LineBreaks::keep).c_str());
    }
  }

  void report() {
    auto summary = recorder_.summary();
    if (!options_.trace.empty()) observe::write_chrome_trace(recorder_, "haco-fleet " + paths_->fleet, options_.trace);
    if (options_.json) {
      nlohmann::json failed = nlohmann::json::array();
      for (const auto& [name, reason] : failures_) failed.push_back({{"instance", name}, {"error", reason}});
      nlohmann::json out = {{"fleet", paths_->fleet},
                            {"started", records_.size()},
                            {"failed", failed},
                            {"atomic_rollback", options_.atomic && !failures_.empty()},
                            {"latency", observe::summary_to_json(summary)}};
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    std::printf("fleet %s: %zu of %zu instances %s\n", paths_->fleet.c_str(), records_.size() - failures_.size(),
                records_.size(), options_.no_wait ? "started" : "ready");
    for (const auto& [name, reason] : failures_) std::printf("  failed %s: %s\n", name.c_str(), reason.c_str());
    std::printf("%s", observe::format_summary(summary).c_str());
    if (!options_.trace.empty()) std::printf("trace written to %s\n", options_.trace.c_str());
  }

  void say(const std::string& text) {
    if (progress_) progress_->message(text);
    else std::fprintf(stderr, "%s\n", text.c_str());
  }

  const GlobalOptions& global_;
  const UpOptions& options_;
  OpenFileLimit open_files_;
  std::optional<state::FleetPaths> paths_;  // once the fleet's name is known and checked
  observe::ReadySpec ready_;
  fleet::ExpandOptions expansion_;  // what the definition was expanded with
  observe::LatencyRecorder recorder_;
  std::unique_ptr<observe::ProgressReporter> progress_;
  std::vector<InstanceRecord> records_;
  std::map<std::string, std::string> failures_;
  std::map<std::size_t, Clock::time_point> exec_done_;
  std::map<std::size_t, std::string> exit_reasons_;
  state::ProcessIdentity supervisor_;
  bool supervisor_running_ = false;
  bool started_supervisor_ = false;
  bool had_instances_ = false;
  bool adopting_ = false;                      // the recorded supervisor is gone: a new one takes over
  std::optional<state::FleetState> existing_;  // the fleet's state when its supervisor runs
  std::size_t ready_count_ = 0;
};

void add_supervise_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("supervise", "The fleet supervisor process (started by `up`)");
  cmd->group("");
  struct Args {
    std::string fleet, definition, restart = "no";
    unsigned spawners = 4, stagger_ms = 0;
    std::uint64_t log_max_bytes = 16u << 20;
    int notify_fd = -1;
    std::string cgroup_layout = "v1_hybrid", cgroup_dir, cgroup_unit;
    std::uint64_t container_open_files = 0;
    bool adopt = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--name", args->fleet)->required()->check(fleet_name_rule());
  cmd->add_option("--definition", args->definition);
  cmd->add_option("--restart", args->restart);
  cmd->add_option("--spawners", args->spawners)->check(whole_number_in(kParallelRange));
  cmd->add_option("--stagger", args->stagger_ms)->check(whole_number_in(kStaggerMsRange));
  cmd->add_option("--log-max-bytes", args->log_max_bytes)->check(whole_number_in(kLogMaxBytesRange));
  cmd->add_option("--notify-fd", args->notify_fd);
  cmd->add_option("--cgroup-layout", args->cgroup_layout);
  cmd->add_option("--cgroup-dir", args->cgroup_dir);
  cmd->add_option("--cgroup-unit", args->cgroup_unit);
  cmd->add_option("--container-nofile", args->container_open_files)->check(whole_number_in(kContainerOpenFilesRange));
  cmd->add_option("--adopt", args->adopt);
  cmd->callback([args, &global, &exit_status] {
    supervisor::SupervisorConfig config{{global.state_root, global.data_root, args->fleet},
                                        args->definition,
                                        supervisor::parse_restart_policy(args->restart),
                                        args->spawners,
                                        std::chrono::milliseconds(args->stagger_ms),
                                        args->log_max_bytes,
                                        args->notify_fd,
                                        {args->fleet, cgroups::layout_from_name(args->cgroup_layout),
                                         args->cgroup_dir, args->cgroup_unit},
                                        false,
                                        args->container_open_files,
                                        args->adopt};
    exit_status = supervisor::run_supervisor(config);
  });
}

}  // namespace

void add_up_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("up", "Start a fleet: one instance per port, supervised, and wait until it is ready");
  auto options = std::make_shared<UpOptions>();
  add_expand_options(*cmd, options->expand);
  cmd->add_option("--parallel", options->parallel,
                  "Spawner processes, and so concurrent starts: " + range_text(kParallelRange))
      ->check(whole_number_in(kParallelRange))
      ->capture_default_str();
  cmd->add_option("--stagger", options->stagger_ms, "Milliseconds between two starts: " + range_text(kStaggerMsRange))
      ->check(whole_number_in(kStaggerMsRange))
      ->capture_default_str();
  cmd->add_option("--restart", options->restart, "Restart policy: no, on-failure[:N], always")->capture_default_str();
  cmd->add_option("--ready", options->ready, "Readiness: tcp (the port accepts) or http:PATH (2xx)")
      ->capture_default_str();
  cmd->add_option("--timeout", options->timeout_s,
                  "Seconds to wait until every instance is ready: " + range_text(kUpTimeoutRange))
      ->check(seconds_in(kUpTimeoutRange))
      ->capture_default_str();
  cmd->add_flag("--no-wait", options->no_wait, "Return once every instance started, without readiness probes");
  cmd->add_flag("--atomic", options->atomic, "All or nothing: if one instance fails, stop the others too");
  cmd->add_option("--trace", options->trace, "Write a Chrome trace (Perfetto) of every phase to this file");
  cmd->add_flag("--json", options->json, "Print the summary as JSON");
  cmd->add_option("--rootfs", options->rootfs_strategy,
                  "Rootfs strategy for tarball images: overlay (shared image cache) or extract (a copy each)")
      ->capture_default_str();
  cmd->add_option("--bootstrap", options->bootstrap,
                  "A bootstrap block of mkdir/tar/chown/mknod commands: auto (served by the rootfs engine when every "
                  "command is of that idiom) or as-written (run by /bin/sh, one command at a time)")
      ->check(CLI::IsMember({"auto", "as-written"}))
      ->capture_default_str();
  cmd->add_option("--log-max-bytes", options->log_max_bytes,
                  "Size in bytes at which an instance log is rotated: " + range_text(kLogMaxBytesRange) + " (1 TiB)")
      ->check(whole_number_in(kLogMaxBytesRange))
      ->capture_default_str();
  cmd->add_flag("--foreground", options->foreground,
                "Stay in the foreground with the supervisor as a child, for a systemd unit (Type=notify, "
                "Delegate=yes: READY=1 once every instance is ready or failed) or another engine; SIGTERM or "
                "Ctrl-C then stops the fleet like `down` without --purge");
  cmd->add_flag("--allow-host-root", options->allow_host_root,
                "Accept instances without a user namespace, whose root is the host's root (warned on stderr)");
  cmd->callback([options, &global, &exit_status] { exit_status = Up(global, *options).run(); });
  add_supervise_command(app, global, exit_status);
}

}  // namespace haco::cli
