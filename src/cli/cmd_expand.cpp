// haco-fleet expand: what `up` would start, as a table or as JSON.
#include <fmt/format.h>

#include <cstdio>
#include <functional>

#include "cli/commands.hpp"
#include "cli/expand_options.hpp"
#include "haco/bootstrap_plan.hpp"
#include "haco/fleet.hpp"
#include "haco/rootfs.hpp"
#include "haco/spec_json.hpp"

namespace haco::cli {
namespace {

std::string join(const std::vector<std::string>& items, const char* sep = " ") {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

std::string id_map_text(const std::vector<IdMapping>& maps) {
  if (maps.empty()) return "-";
  std::vector<std::string> parts;
  for (const auto& m : maps)
    parts.push_back(fmt::format("{}-{}->{}-{}", m.inside, m.inside + m.count - 1, m.outside,
                                std::uint64_t(m.outside) + m.count - 1));
  return join(parts, ",");
}

std::string namespaces_text(const ContainerSpec& s) {
  std::vector<std::string> names;
  for (auto ns : s.namespaces) names.emplace_back(namespace_name(ns));
  return names.empty() ? "-" : join(names);
}

std::string mounts_text(const ContainerSpec& s) {
  std::vector<std::string> parts;
  for (const auto& m : s.mounts)
    parts.push_back(fmt::format("{} on {}{}{}{}", m.source, m.target, m.fstype.empty() ? " (bind)" : " (" + m.fstype + ")",
                                m.options.empty() ? "" : " " + m.options, m.read_only ? " ro" : ""));
  if (s.network_etc_host_root) parts.push_back("resolv.conf, hosts from " + *s.network_etc_host_root + " (ro)");
  for (auto m : s.independent_mounts) parts.emplace_back(independent_mount_name(m));
  return parts.empty() ? "-" : join(parts, ", ");
}

std::string cgroup_text(const ContainerSpec& s) {
  std::vector<std::string> parts;
  for (const auto& c : s.cgroup) parts.push_back(c.key + "=" + c.value);
  return parts.empty() ? "-" : join(parts);
}

std::string bootstrap_text(const ContainerSpec& s) {
  switch (s.bootstrap.kind) {
    case BootstrapKind::none: return "none (the rootfs must exist)";
    case BootstrapKind::tarball: return "tarball " + s.bootstrap.archive_path;
    case BootstrapKind::oci: return "oci image " + s.bootstrap.image;
    case BootstrapKind::shell: return "shell script, when the rootfs does not exist yet";
    case BootstrapKind::block: {
      if (rootfs::rootfs_populated(s.rootfs))
        return "the definition's block; not run, the rootfs exists";
      if (!s.bootstrap.recording_error.empty())
        return "the definition's block, run as written when the rootfs does not exist yet (it needs what its "
               "commands print)";
      fleet::BootstrapPlanResult plan = fleet::plan_bootstrap(s.bootstrap.commands, s);
      if (plan.plan)
        return "the definition's block, recognised (mkdir + tar + chown -R): " + plan.plan->archive +
               " served by the rootfs engine, owners shifted per file (up --bootstrap as-written runs it instead)";
      return "the definition's block, run as written when the rootfs does not exist yet (" + plan.reason + ")";
    }
  }
  return "?";
}

std::string host_root_text(const ContainerSpec& s) {
  return s.has_namespace(Namespace::user)
             ? "no (user namespace)"
             : "YES: no user namespace, the container's root is the host's root (up needs --allow-host-root)";
}

std::string owner_text(const ContainerSpec& s) {
  return s.rootfs_owner ? fmt::format("{}:{}", s.rootfs_owner->uid, s.rootfs_owner->gid) : "-";
}

void print_table(const std::string& fleet, const std::string& path, const std::vector<InstanceSpec>& instances) {
  std::printf("fleet %s: %zu instance%s from %s\n\n", fleet.c_str(), instances.size(), instances.size() == 1 ? "" : "s",
              path.c_str());
  // Settings equal in every instance are printed once; the others per instance.
  struct Column {
    const char* label;
    std::function<std::string(const ContainerSpec&)> text;
  };
  const std::vector<Column> settings = {
      {"namespaces", namespaces_text},
      {"mounts", mounts_text},
      {"cgroup", cgroup_text},
      {"bootstrap", bootstrap_text},
      {"rootfs owner", owner_text},
      {"host root", host_root_text},
      {"daemonize", [](const ContainerSpec& s) { return std::string(s.daemonize ? "yes" : "no"); }},
      {"command", [](const ContainerSpec& s) { return join(s.command); }},
  };
  std::vector<const Column*> varying;
  std::vector<const Column*> common;
  for (const auto& column : settings) {
    std::string first = column.text(instances.front().container);
    bool same = std::all_of(instances.begin(), instances.end(),
                            [&](const InstanceSpec& i) { return column.text(i.container) == first; });
    (same ? common : varying).push_back(&column);
  }

  size_t name_width = 4, rootfs_width = 6, uid_width = 7, gid_width = 7;
  for (const auto& i : instances) {
    name_width = std::max(name_width, i.container.name.size());
    rootfs_width = std::max(rootfs_width, i.container.rootfs.size());
    uid_width = std::max(uid_width, id_map_text(i.container.uid_map).size());
    gid_width = std::max(gid_width, id_map_text(i.container.gid_map).size());
  }
  std::printf("%-*s  %5s  %-*s  %-*s  %-*s\n", int(name_width), "NAME", "PORT", int(rootfs_width), "ROOTFS",
              int(uid_width), "UID MAP", int(gid_width), "GID MAP");
  for (const auto& i : instances) {
    std::printf("%-*s  %5u  %-*s  %-*s  %-*s\n", int(name_width), i.container.name.c_str(), i.port,
                int(rootfs_width), i.container.rootfs.c_str(), int(uid_width), id_map_text(i.container.uid_map).c_str(),
                int(gid_width), id_map_text(i.container.gid_map).c_str());
    for (const Column* column : varying)
      std::printf("    %-12s %s\n", column->label, column->text(i.container).c_str());
  }
  if (!common.empty()) {
    std::printf("\n%s:\n", instances.size() == 1 ? "settings" : "the same in every instance");
    for (const Column* column : common)
      std::printf("  %-12s %s\n", column->label, column->text(instances.front().container).c_str());
  }
}

}  // namespace

void add_expand_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand(
      "expand",
      "Evaluate a definition once per port and print the instances `up` would start (nothing is started)");
  auto options = std::make_shared<ExpandCommandOptions>();
  add_expand_options(*cmd, *options);
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print a JSON document (schema 1) instead of a table");
  cmd->footer(
      "Example: the three instances ports 10001-10003 give, as a table, without starting any:\n"
      "  haco-fleet expand --ports 10001-10003 templates/phpinfo.haco");
  cmd->callback([options, json, &global, &exit_status] {
    auto expanded = expand_from_options(*options);
    check_against_other_fleets(global.state_root, expanded, global.level());
    if (*json)
      std::printf("%s\n", expand_document(expanded.fleet_name, expanded.instances).dump(2).c_str());
    else
      print_table(expanded.fleet_name, options->definition, expanded.instances);
    exit_status = kExitOk;
  });
}

}  // namespace haco::cli
