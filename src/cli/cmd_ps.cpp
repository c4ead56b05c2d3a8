// haco-fleet ps: the instances of one fleet or of all, from the fleet state
// files (the supervisor keeps them current; when it is gone, ps says so and
// checks each recorded process by pid and start time).
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/json_schemas.hpp"
#include "cli/privilege.hpp"
#include "cli/recent_exits_json.hpp"
#include "haco/error.hpp"
#include "haco/printable.hpp"
#include "haco/slurm.hpp"
#include "haco/state.hpp"
#include "haco/supervisor.hpp"

namespace haco::cli {
namespace {

using state::InstanceRecord;
using state::InstanceState;

std::string id_range(const std::vector<IdMapping>& maps) {
  if (maps.empty()) return "-";
  std::string out;
  for (const auto& m : maps)
    out += fmt::format("{}{}-{}", out.empty() ? "" : ",", m.outside, std::uint64_t(m.outside) + m.count - 1);
  return out;
}

std::string duration_text(std::int64_t ms) {
  auto s = ms / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

// What the state file says, corrected by what the kernel says when the
// supervisor is no longer there to keep it current.
std::string effective_state(const InstanceRecord& r, bool supervised) {
  std::string recorded(state::instance_state_name(r.state));
  if (supervised || r.process.pid <= 0) return recorded;
  return state::is_alive(r.process) ? "running (unsupervised)" : "gone";
}

bool is_running(const InstanceRecord& r) {
  return r.process.pid > 0 && (r.state == InstanceState::running || r.state == InstanceState::stopping);
}

nlohmann::json fleet_json(const state::FleetState& fleet, bool supervised) {
  auto now = state::unix_now_ms();
  nlohmann::json instances = nlohmann::json::array();
  for (const auto& r : fleet.instances) {
    nlohmann::json item = {{"instance", r.name()},
                           {"port", r.spec.port},
                           {"uid_range", id_range(r.spec.container.uid_map)},
                           {"gid_range", id_range(r.spec.container.gid_map)},
                           {"pid", r.process.pid > 0 ? nlohmann::json(r.process.pid) : nlohmann::json()},
                           {"state", effective_state(r, supervised)},
                           {"uptime_s", is_running(r) ? nlohmann::json((now - r.started_at_unix_ms) / 1000.0)
                                                      : nlohmann::json()},
                           {"restarts", r.restarts},
                           {"last_exit", r.last_exit ? nlohmann::json(state::describe_exit(*r.last_exit))
                                                     : nlohmann::json()},
                           {"recent_exits", recent_exits_json(r.recent_exits)},
                           {"error", printable(r.error)},
                           {"log", r.log_path},
                           {"cgroups", r.cgroup_paths}};
    instances.push_back(item);
  }
  nlohmann::json memory;
  if (auto m = supervisor::fleet_memory(fleet)) {
    auto usage = [](const state::MemoryUsage& u) { return nlohmann::json{{"rss_kib", u.rss_kib}, {"pss_kib", u.pss_kib}}; };
    nlohmann::json spawners = nlohmann::json::array();
    for (const auto& s : m->spawners) spawners.push_back(usage(s));
    memory = {{"supervisor", usage(m->supervisor)},
              {"spawners", spawners},
              {"log_writer", m->log_writer ? usage(*m->log_writer) : nlohmann::json()},
              {"total", usage(m->total)}};
  }
  return {{"fleet", fleet.fleet},
          {"definition", fleet.definition},
          {"restart_policy", fleet.restart_policy},
          {"supervisor", {{"pid", fleet.supervisor.pid}, {"running", supervised}}},
          {"log_writer", {{"pid", fleet.log_writer.pid}, {"running", state::is_alive(fleet.log_writer)}}},
          {"unit", fleet.cgroup.unit.empty() ? nlohmann::json() : nlohmann::json(fleet.cgroup.unit)},
          {"cgroup", {{"layout", cgroups::layout_name(fleet.cgroup.layout)},
                      {"dir", fleet.cgroup.dir.empty() ? nlohmann::json() : nlohmann::json(fleet.cgroup.dir)}}},
          {"memory", memory},
          {"instances", instances}};
}

void print_fleet(const state::FleetState& fleet, bool supervised) {
  if (supervised)
    std::printf("fleet %s (%s): supervisor pid %d%s, %zu instances\n", fleet.fleet.c_str(), fleet.definition.c_str(),
                fleet.supervisor.pid, fleet.cgroup.unit.empty() ? "" : (" in unit " + fleet.cgroup.unit).c_str(),
                fleet.instances.size());
  else
    std::printf("fleet %s (%s): the supervisor (pid %d) is NOT running; states below are the last recorded, "
                "checked against the kernel\n",
                fleet.fleet.c_str(), fleet.definition.c_str(), fleet.supervisor.pid);
  std::size_t name_width = 8;
  for (const auto& r : fleet.instances) name_width = std::max(name_width, r.name().size());
  std::printf("%-*s  %5s  %-19s  %-19s  %8s  %-12s  %8s  %8s  %s\n", int(name_width), "INSTANCE", "PORT", "HOST UIDS",
              "HOST GIDS", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT");
  auto now = state::unix_now_ms();
  for (const auto& r : fleet.instances) {
    std::string last = r.last_exit ? state::describe_exit(*r.last_exit) : "-";
    if (!r.error.empty()) last = (r.last_exit ? last + "; " : "") + printable(r.error);
    std::printf("%-*s  %5u  %-19s  %-19s  %8s  %-12s  %8s  %8u  %s\n", int(name_width), r.name().c_str(), r.spec.port,
                id_range(r.spec.container.uid_map).c_str(), id_range(r.spec.container.gid_map).c_str(),
                r.process.pid > 0 ? std::to_string(r.process.pid).c_str() : "-",
                effective_state(r, supervised).c_str(),
                is_running(r) ? duration_text(now - r.started_at_unix_ms).c_str() : "-", r.restarts, last.c_str());
  }
}

nlohmann::json slice_json(const slurm::SliceRecord& s, const std::string& root) {
  return {{"job", s.job},         {"slice", s.index + 1}, {"slices", s.count},  {"node", s.node},
          {"ports", s.ports},     {"state", s.state},     {"detail", s.detail}, {"state_root", root}};
}

std::string slice_text(const slurm::SliceRecord& s, const std::string& root) {
  return fmt::format("slurm job {}, slice {}/{} on {}: ports {}, {}{} (state root {})", s.job, s.index + 1, s.count,
                     s.node, s.ports, s.state, s.detail.empty() ? "" : " " + printable(s.detail), root);
}

}  // namespace

void add_ps_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("ps", "List the instances of a fleet (or of every fleet)");
  auto name = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("--name", *name, "Only this fleet")->check(fleet_name_rule());
  cmd->add_flag("--json", *json, "Print JSON, with the memory of the supervisor and spawners (RSS, PSS)");
  cmd->footer(
      "Example: the instances of the fleet phpinfo as JSON, with the supervisor's memory:\n"
      "  haco-fleet ps --name phpinfo --json");
  cmd->callback([name, json, &global, &exit_status] {
    if (!can_read_state_root("ps", global.state_root)) {
      exit_status = kExitBadInput;
      return;
    }
    // The fleets of the state root, then the slices of Slurm jobs on this
    // node (each a fleet under a state root of its own, ROOT/slurm/JOB.TASK).
    struct Listed {
      std::string root, fleet;
      std::optional<slurm::SliceRecord> slice;
    };
    std::vector<Listed> listed;
    for (const auto& f : state::list_fleets(global.state_root)) listed.push_back({global.state_root, f, std::nullopt});
    for (const auto& slice_root : slurm::list_slice_roots(global.state_root)) {
      std::optional<slurm::SliceRecord> slice;
      try {
        slice = slurm::read_slice_record(slice_root);
      } catch (const Error& e) {
        std::fprintf(stderr, "haco-fleet: %s\n", e.what());
      }
      for (const auto& f : state::list_fleets(slice_root)) listed.push_back({slice_root, f, slice});
    }
    if (!name->empty()) {
      std::erase_if(listed, [&](const Listed& l) { return l.fleet != *name; });
      if (listed.empty()) listed.push_back({global.state_root, *name, std::nullopt});
    }
    nlohmann::json out = nlohmann::json::array();
    bool first = true;
    exit_status = kExitOk;
    for (const auto& [root, f, slice] : listed) {
      state::FleetPaths paths{root, global.data_root, f};
      std::optional<state::FleetState> fleet;
      try {
        fleet = state::load_state(paths);
      } catch (const Error& e) {
        // One fleet's unreadable state does not hide the others.
        if (!name->empty()) throw;
        std::fprintf(stderr, "haco-fleet: fleet '%s': %s\n", f.c_str(), e.what());
        exit_status = kExitFailed;
        continue;
      }
      if (!fleet) {
        if (!name->empty()) throw InputError("no fleet named '" + f + "' under " + global.state_root);
        continue;
      }
      bool supervised = state::is_alive(fleet->supervisor);
      if (*json) {
        auto item = fleet_json(*fleet, supervised);
        item["slurm"] = slice ? slice_json(*slice, root) : nlohmann::json();
        out.push_back(item);
      } else {
        if (!first) std::printf("\n");
        if (slice) std::printf("%s\n", slice_text(*slice, root).c_str());
        print_fleet(*fleet, supervised);
      }
      first = false;
    }
    if (*json) std::printf("%s\n", nlohmann::json{{"schema", kPsSchemaVersion}, {"fleets", out}}.dump(2).c_str());
    else if (first) std::printf("no fleet under %s\n", global.state_root.c_str());
  });
}

}  // namespace haco::cli
