// haco-fleet inspect: one instance's spec, processes, namespaces, cgroup
// limits as the kernel reads them, mounts, logs and restart history
// (ops::inspect), as text or JSON.
#include <time.h>

#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_schemas.hpp"
#include "cli/privilege.hpp"
#include "cli/recent_exits_json.hpp"
#include "haco/ops_inspect.hpp"
#include "haco/printable.hpp"
#include "haco/spec_json.hpp"

namespace haco::cli {
namespace {

using nlohmann::json;

json or_null(const std::string& text) { return text.empty() ? json() : json(printable(text)); }

std::string utc_time(std::int64_t unix_ms) {
  time_t seconds = static_cast<time_t>(unix_ms / 1000);
  tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

json inspect_json(const ops::InspectResult& r) {
  const auto& record = r.record;
  json namespaces = json::array();
  for (const auto& ns : r.namespaces)
    namespaces.push_back({{"name", ns.name}, {"link", ns.link}, {"host_link", or_null(ns.host_link)}, {"own", ns.own()}});
  json limits = json::array();
  for (const auto& l : r.limits)
    limits.push_back({{"key", l.key},
                      {"wanted", l.wanted},
                      {"dir", or_null(l.dir)},
                      {"kernel", l.kernel ? json(printable(*l.kernel)) : json()},
                      {"matches", l.matches()},
                      {"error", or_null(l.error)}});
  json mounts = json::array();
  for (const auto& m : r.mounts)
    mounts.push_back({{"mount_point", printable(m.mount_point)},
                      {"fstype", printable(m.fstype)},
                      {"source", printable(m.source)},
                      {"options", printable(m.options)}});
  json logs = json::array();
  for (const auto& l : r.logs) logs.push_back({{"path", l.path}, {"size", l.size ? json(*l.size) : json()}});
  return {{"schema", kInspectSchemaVersion},
          {"fleet", r.fleet},
          {"definition", r.definition},
          {"instance", record.name()},
          {"port", record.spec.port},
          {"state", r.state},
          {"supervised", r.supervised},
          {"spec", to_json(record.spec)},
          {"spec_hash", record.spec_hash},
          {"init",
           {{"pid", record.process.pid > 0 ? json(record.process.pid) : json()},
            {"start_time", record.process.pid > 0 ? json(record.process.start_time) : json()},
            {"running", r.init_running}}},
          {"not_running", or_null(r.not_running)},
          {"pids", r.pids},
          {"pids_error", or_null(r.pids_error)},
          {"namespaces", namespaces},
          {"namespaces_error", or_null(r.namespaces_error)},
          {"cgroup", {{"dirs", r.cgroup_dirs}, {"limits", limits}}},
          {"mounts", mounts},
          {"mounts_error", or_null(r.mounts_error)},
          {"logs", logs},
          {"restarts", record.restarts},
          {"last_exit", record.last_exit ? json(state::describe_exit(*record.last_exit)) : json()},
          {"error", or_null(record.error)},
          {"recent_exits", recent_exits_json(record.recent_exits)}};
}

std::string joined(const std::vector<std::string>& words, const char* separator = " ") {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : separator) + w;
  return out;
}

std::string id_maps(const std::vector<IdMapping>& maps) {
  if (maps.empty()) return "none (host ids)";
  std::vector<std::string> parts;
  for (const auto& m : maps)
    parts.push_back(fmt::format("{}-{} -> {}-{}", m.inside, std::uint64_t(m.inside) + m.count - 1, m.outside,
                                std::uint64_t(m.outside) + m.count - 1));
  return joined(parts, ", ");
}

void print_inspect(const ops::InspectResult& r) {
  const auto& record = r.record;
  const auto& c = record.spec.container;
  std::printf("instance %s of fleet %s (%s)\n", record.name().c_str(), r.fleet.c_str(), r.definition.c_str());
  std::printf("  port %u, state %s, supervisor %s\n", record.spec.port, r.state.c_str(),
              r.supervised ? "running" : "NOT running");

  std::vector<std::string> namespaces;
  for (auto ns : c.namespaces) namespaces.emplace_back(namespace_name(ns));
  std::printf("spec\n");
  std::printf("  %-13s %s\n", "init command", printable(joined(c.command)).c_str());
  std::printf("  %-13s %s\n", "environment", c.environment.empty() ? "-" : printable(joined(c.environment)).c_str());
  std::printf("  %-13s %s\n", "rootfs", c.rootfs.c_str());
  std::printf("  %-13s %s\n", "namespaces", namespaces.empty() ? "-" : joined(namespaces).c_str());
  std::printf("  %-13s %s\n", "uid map", id_maps(c.uid_map).c_str());
  std::printf("  %-13s %s\n", "gid map", id_maps(c.gid_map).c_str());
  std::printf("  %-13s %s\n", "workdir", c.workdir.c_str());
  std::printf("  %-13s %d\n", "stop signal", c.stop_signal);
  std::printf("  %-13s %s\n", "spec hash", record.spec_hash.c_str());

  std::printf("processes\n");
  if (record.process.pid > 0)
    std::printf("  init pid %d (start time %llu)%s\n", record.process.pid,
                static_cast<unsigned long long>(record.process.start_time), r.init_running ? "" : ", gone");
  else
    std::printf("  no init: %s\n", r.not_running.c_str());
  if (!r.pids_error.empty()) std::printf("  in its cgroup: unreadable (%s)\n", printable(r.pids_error).c_str());
  else {
    std::vector<std::string> pids;
    for (pid_t pid : r.pids) pids.push_back(std::to_string(pid));
    std::printf("  in its cgroup: %s\n", pids.empty() ? "none" : joined(pids).c_str());
  }

  std::printf("namespaces of the init (own: not the host's)\n");
  if (!r.namespaces_error.empty()) std::printf("  unreadable: %s\n", printable(r.namespaces_error).c_str());
  for (const auto& ns : r.namespaces)
    std::printf("  %-18s %-22s %s\n", ns.name.c_str(), ns.link.c_str(),
                ns.host_link.empty() ? "(host's unreadable)" : ns.own() ? "own" : "host's");

  std::printf("cgroup\n");
  for (const auto& dir : r.cgroup_dirs) std::printf("  %s\n", dir.c_str());
  if (r.cgroup_dirs.empty()) std::printf("  no directory recorded\n");
  for (const auto& l : r.limits) {
    if (l.kernel)
      std::printf("  %-28s wanted %-20s kernel %s%s\n", l.key.c_str(), l.wanted.c_str(), printable(*l.kernel).c_str(),
                  l.matches() ? "" : "  (differs)");
    else
      std::printf("  %-28s wanted %-20s kernel unreadable (%s)\n", l.key.c_str(), l.wanted.c_str(),
                  printable(l.error).c_str());
  }

  std::printf("mounts (the container's view)\n");
  if (!r.mounts_error.empty()) std::printf("  unreadable: %s\n", printable(r.mounts_error).c_str());
  for (const auto& m : r.mounts)
    std::printf("  %-28s %-10s %-16s %s\n", printable(m.mount_point).c_str(), printable(m.fstype).c_str(),
                printable(m.source).c_str(), printable(m.options).c_str());

  std::printf("logs\n");
  for (const auto& l : r.logs)
    std::printf("  %s  %s\n", l.path.c_str(), l.size ? fmt::format("{} bytes", *l.size).c_str() : "(none)");

  std::printf("restarts %u, last exit %s%s\n", record.restarts,
              record.last_exit ? state::describe_exit(*record.last_exit).c_str() : "-",
              record.error.empty() ? "" : ("; error: " + printable(record.error)).c_str());
  for (const auto& e : record.recent_exits)
    std::printf("  %s  %-28s %s\n", utc_time(e.exit.at_unix_ms).c_str(), state::describe_exit(e.exit).c_str(),
                e.restarted ? "restarted" : e.stop_requested ? "stop requested" : "not restarted");
}

}  // namespace

void add_inspect_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand(
      "inspect", "Show one instance: its spec, processes, namespaces, cgroup limits as the kernel reads them, mounts, "
                 "logs and restart history");
  struct Args {
    std::string instance, fleet;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("instance", args->instance, "The instance's port (10001) or name (phpinfo-10001)")->required();
  cmd->add_option("--name", args->fleet, "The fleet (default: the only one)")->check(fleet_name_rule());
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->footer(
      "Example: the instance on port 10042 of the fleet phpinfo, as JSON:\n"
      "  haco-fleet inspect --name phpinfo 10042 --json");
  cmd->callback([args, &global, &exit_status] {
    if (!can_read_state_root("inspect", global.state_root)) {
      exit_status = kExitBadInput;
      return;
    }
    auto result = ops::inspect(global.state_root, global.data_root, args->fleet, args->instance);
    if (args->json) std::printf("%s\n", inspect_json(result).dump(2).c_str());
    else print_inspect(result);
    exit_status = kExitOk;
  });
}

}  // namespace haco::cli
