// `reload`: the fleet's definition evaluated again, compared with each
// record; changed limits applied live, the rest listed (haco/ops_reload.hpp).
#include "haco/ops_reload.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops_select.hpp"

namespace haco::ops {
namespace {

using state::InstanceState;

// The bootstrap as it identifies an instance (state::spec_hash's rule: the
// commands a block issued depend on the host's files, not the definition).
bool same_bootstrap(const Bootstrap& a, const Bootstrap& b) {
  return a.kind == b.kind && a.archive_path == b.archive_path && a.tar_options == b.tar_options && a.code == b.code &&
         a.image == b.image;
}

// Every field of a container but its cgroup settings, with what it is
// called in a "needs a restart" line.
void compare_fields(const ContainerSpec& a, const ContainerSpec& b, std::vector<std::string>& out) {
  auto check = [&](bool same, const char* what) {
    if (!same) out.emplace_back(what);
  };
  check(a.name == b.name, "name");
  check(a.command == b.command, "init command");
  check(a.daemonize == b.daemonize, "daemonize");
  check(a.rootfs == b.rootfs, "rootfs");
  check(a.namespaces == b.namespaces, "namespaces");
  check(a.uid_map == b.uid_map, "uid mapping");
  check(a.gid_map == b.gid_map, "gid mapping");
  check(a.rootfs_owner == b.rootfs_owner, "rootfs owner");
  check(a.mounts == b.mounts, "mounts");
  check(a.network_etc_host_root == b.network_etc_host_root, "network /etc");
  check(a.independent_mounts == b.independent_mounts, "independent mounts");
  check(same_bootstrap(a.bootstrap, b.bootstrap), "bootstrap");
  check(a.environment == b.environment, "environment");
  check(a.workdir == b.workdir, "workdir");
  check(a.user == b.user, "user");
  check(a.stop_signal == b.stop_signal, "stop signal");
  check(a.capabilities == b.capabilities, "capabilities");
  check(a.no_new_privs == b.no_new_privs, "no_new_privs");
  check(a.seccomp_default_filter == b.seccomp_default_filter && a.seccomp_filter == b.seccomp_filter, "seccomp");
}

const CgroupSetting* find_setting(const std::vector<CgroupSetting>& settings, const std::string& key) {
  auto it = std::find_if(settings.begin(), settings.end(), [&](const CgroupSetting& s) { return s.key == key; });
  return it == settings.end() ? nullptr : &*it;
}

// The options a record was expanded with; a record from before they were
// recorded gets `up`'s defaults.
fleet::ExpandOptions expand_options(const std::optional<state::RecordedExpansion>& recorded,
                                    const ReloadRequest& request) {
  fleet::ExpandOptions options;
  options.base_environment = request.base_environment;
  options.eval_timeout = request.eval_timeout;
  if (recorded) {
    options.port_env_names = recorded->port_env_names;
    options.default_pids_max = recorded->default_pids_max;
    options.allow_shared_rootfs = recorded->allow_shared_rootfs;
  }
  return options;
}

// The definition for every port of the fleet, each group of records
// evaluated with the options it was expanded with. Any failure is bad
// input: the definition as it is now.
std::map<std::uint16_t, InstanceSpec> evaluate(const state::FleetState& fleet, const ReloadRequest& request,
                                               const Expander& expand, Sink& sink) {
  std::vector<std::pair<std::optional<state::RecordedExpansion>, std::vector<std::uint16_t>>> groups;
  std::size_t unrecorded = 0;
  for (const auto& r : fleet.instances) {
    if (!r.expansion) ++unrecorded;
    auto group = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == r.expansion; });
    if (group == groups.end()) groups.push_back({r.expansion, {r.spec.port}});
    else group->second.push_back(r.spec.port);
  }
  if (unrecorded > 0)
    sink.warning(fmt::format("{} instance(s) of fleet {} were started before `up` recorded its "
                             "--port-env and --pids-max: evaluated with the defaults",
                             unrecorded, fleet.fleet));
  std::map<std::uint16_t, InstanceSpec> specs;
  for (const auto& [expansion, ports] : groups) {
    std::vector<InstanceSpec> evaluated;
    try {
      evaluated = expand(fleet.definition, ports, expand_options(expansion, request));
    } catch (const Error& e) {
      throw InputError(Error(e).with_context(
          fmt::format("fleet {}: its definition {} no longer evaluates (nothing was changed)", fleet.fleet,
                      fleet.definition)));
    }
    for (auto& spec : evaluated) specs.emplace(spec.port, std::move(spec));
  }
  return specs;
}

}  // namespace

SpecDiff diff_specs(const InstanceSpec& recorded, const InstanceSpec& now) {
  SpecDiff diff;
  if (recorded.port != now.port) diff.needs_restart.emplace_back("port");
  compare_fields(recorded.container, now.container, diff.needs_restart);
  const auto& before = recorded.container.cgroup;
  const auto& after = now.container.cgroup;
  diff.cgroup = before;
  for (const auto& setting : after) {
    const CgroupSetting* old = find_setting(before, setting.key);
    if (old && old->value == setting.value) continue;
    diff.limits.push_back({setting.key, old ? std::optional(old->value) : std::nullopt, setting.value});
    if (old) {
      std::find_if(diff.cgroup.begin(), diff.cgroup.end(), [&](const CgroupSetting& s) {
        return s.key == setting.key;
      })->value = setting.value;
    } else {
      diff.cgroup.push_back(setting);
    }
  }
  for (const auto& setting : before)
    if (!find_setting(after, setting.key))
      diff.needs_restart.push_back(
          fmt::format("cgroup {} removed (the kernel keeps {} until it starts again)", setting.key, setting.value));
  return diff;
}

std::string_view limits_outcome_name(LimitsOutcome outcome) {
  switch (outcome) {
    case LimitsOutcome::none: return "none";
    case LimitsOutcome::applied: return "applied";
    case LimitsOutcome::would_apply: return "would_apply";
    case LimitsOutcome::not_running: return "not_running";
    case LimitsOutcome::recorded: return "recorded";
    case LimitsOutcome::failed: return "failed";
  }
  return "none";
}

std::size_t ReloadResult::failed() const {
  return static_cast<std::size_t>(std::count_if(
      instances.begin(), instances.end(), [](const ReloadedInstance& i) { return i.limits == LimitsOutcome::failed; }));
}

ReloadResult reload(const ReloadRequest& request, SupervisorClient& supervisor, const Expander& expand, Sink& sink) {
  const state::FleetPaths paths = choose_fleet(request.state_root, request.data_root, request.fleet);
  // Serialised with `up` and `down` of the fleet; a dry run changes nothing.
  std::optional<state::FleetLock> lock;
  if (!request.dry_run) {
    lock = state::FleetLock::try_acquire(paths, "reload");
    if (!lock) {
      auto holder = state::FleetLock::holder(paths);
      throw Error(fmt::format("fleet {}: {} holds its lock; reload once it is done", paths.fleet,
                              holder ? fmt::format("`{}` (pid {})", holder->role, holder->process.pid)
                                     : std::string("another command")));
    }
  }
  const state::FleetState fleet = load_fleet(paths);
  ReloadResult result;
  result.fleet = fleet.fleet;
  result.definition = fleet.definition;
  const auto specs = evaluate(fleet, request, expand, sink);

  std::map<std::string, std::vector<CgroupSetting>> to_apply;
  for (const auto& record : fleet.instances) {
    ReloadedInstance item;
    item.instance = record.name();
    item.port = record.spec.port;
    item.state = std::string(state::instance_state_name(record.state));
    auto now = specs.find(record.spec.port);
    if (now == specs.end()) throw Error(fmt::format("the definition gave no instance for port {}", record.spec.port));
    item.diff = diff_specs(record.spec, now->second);
    if (!item.diff.limits.empty()) {
      if (request.dry_run) {
        item.limits = state::is_active(record.state) ? LimitsOutcome::would_apply : LimitsOutcome::not_running;
      } else if (!state::is_active(record.state)) {
        // Every launch makes its cgroups with the record's limits: a later
        // `start` gets them.
        item.limits = LimitsOutcome::recorded;
        to_apply[item.instance] = item.diff.cgroup;
      } else {
        item.limits = LimitsOutcome::applied;
        to_apply[item.instance] = item.diff.cgroup;
      }
    }
    result.instances.push_back(std::move(item));
  }
  if (to_apply.empty()) return result;

  if (!supervisor.answers(paths))
    throw Error(fmt::format("the supervisor of fleet {} does not answer: nothing was applied (`haco-fleet up` gives "
                            "the fleet a new one)",
                            paths.fleet));
  const auto failures = supervisor.update_limits(paths, to_apply);
  for (auto& item : result.instances) {
    auto failure = failures.find(item.instance);
    if (failure == failures.end() || !to_apply.count(item.instance)) continue;
    item.limits = LimitsOutcome::failed;
    item.error = failure->second;
  }
  return result;
}

}  // namespace haco::ops
