// haco-fleet reload: the fleet's definition evaluated again; changed cgroup
// limits applied to the running instances without a restart, every other
// change listed as needing one (ops::reload), as text or JSON.
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_schemas.hpp"
#include "cli/privilege.hpp"
#include "cli/progress_sink.hpp"
#include "haco/ops_reload.hpp"
#include "haco/printable.hpp"

namespace haco::cli {
namespace {

using nlohmann::json;

std::string limit_text(const ops::LimitChange& change) {
  return fmt::format("{} {} -> {}", change.key, change.before.value_or("(unset)"), change.after);
}

std::string outcome_text(const ops::ReloadedInstance& i) {
  switch (i.limits) {
    case ops::LimitsOutcome::applied: return "applied";
    case ops::LimitsOutcome::would_apply: return "would be applied (--dry-run)";
    case ops::LimitsOutcome::not_running:
      return "not running (" + i.state + "): its next start would get them";
    case ops::LimitsOutcome::recorded:
      return "recorded: not running (" + i.state + "), its next start gets them";
    case ops::LimitsOutcome::failed: return "NOT applied: " + printable(i.error);
    case ops::LimitsOutcome::none: break;
  }
  return "";
}

json reload_json(const ops::ReloadResult& r, bool dry_run) {
  json instances = json::array();
  for (const auto& i : r.instances) {
    json limits = json::array();
    for (const auto& l : i.diff.limits)
      limits.push_back({{"key", l.key}, {"before", l.before ? json(*l.before) : json()}, {"after", l.after}});
    instances.push_back({{"instance", i.instance},
                         {"port", i.port},
                         {"state", i.state},
                         {"limits", limits},
                         {"limits_outcome", std::string(ops::limits_outcome_name(i.limits))},
                         {"error", i.error.empty() ? json() : json(printable(i.error))},
                         {"needs_restart", i.diff.needs_restart}});
  }
  return {{"schema", kReloadSchemaVersion},
          {"fleet", r.fleet},
          {"definition", r.definition},
          {"dry_run", dry_run},
          {"instances", instances}};
}

void print_reload(const ops::ReloadResult& r, bool dry_run) {
  std::size_t applied = 0, recorded = 0, restart = 0, unchanged = 0;
  std::printf("fleet %s: %s evaluated again for %zu instance%s%s\n", r.fleet.c_str(), r.definition.c_str(),
              r.instances.size(), r.instances.size() == 1 ? "" : "s", dry_run ? " (dry run: nothing applied)" : "");
  for (const auto& i : r.instances) {
    if (i.diff.unchanged()) {
      ++unchanged;
      continue;
    }
    for (const auto& l : i.diff.limits)
      std::printf("  %s: %s: %s\n", i.instance.c_str(), limit_text(l).c_str(), outcome_text(i).c_str());
    if (i.limits == ops::LimitsOutcome::applied || i.limits == ops::LimitsOutcome::would_apply) ++applied;
    if (i.limits == ops::LimitsOutcome::recorded) ++recorded;
    if (!i.diff.needs_restart.empty()) {
      ++restart;
      std::string what;
      for (const auto& n : i.diff.needs_restart) what += (what.empty() ? "" : ", ") + n;
      std::printf("  %s: needs a restart, not applied: %s\n", i.instance.c_str(), printable(what).c_str());
    }
  }
  std::printf("%zu instance%s with limits %s, %zu recorded for the next start, %zu needing a restart, %zu failed, "
              "%zu unchanged\n",
              applied, applied == 1 ? "" : "s", dry_run ? "to apply" : "applied", recorded, restart, r.failed(),
              unchanged);
}

}  // namespace

void add_reload_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand(
      "reload",
      "Evaluate the fleet's definition again: apply changed cgroup limits to the running instances without "
      "restarting them, and list the changes that need a restart (not applied)");
  struct Args {
    std::string fleet;
    bool dry_run = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--name", args->fleet, "The fleet (default: the only one)")->check(fleet_name_rule());
  cmd->add_flag("--dry-run", args->dry_run, "Only say what would be applied and what needs a restart");
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->footer(
      "Example: after raising cgroup[\"pids.max\"] in the fleet phpinfo's definition, see what changes, then apply "
      "it:\n"
      "  haco-fleet reload --name phpinfo --dry-run\n"
      "  haco-fleet reload --name phpinfo");
  cmd->callback([args, &global, &exit_status] {
    if (!running_as_root("reload")) {
      exit_status = kExitBadInput;
      return;
    }
    ops::ReloadRequest request;
    request.state_root = global.state_root;
    request.data_root = global.data_root;
    request.fleet = args->fleet;
    request.dry_run = args->dry_run;
    request.base_environment = dsl::process_environment();
    auto supervisor = ops::control_supervisor();
    ProgressSink sink("reload", {}, global.level(), false);
    auto result = ops::reload(request, *supervisor, fleet::expand, sink);
    if (args->json) std::printf("%s\n", reload_json(result, args->dry_run).dump(2).c_str());
    else print_reload(result, args->dry_run);
    exit_status = result.failed() > 0 ? kExitFailed : kExitOk;
  });
}

}  // namespace haco::cli
