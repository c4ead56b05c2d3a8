// haco-fleet images: the image cache of the data root, with sizes and the
// fleets that use each entry; `images prune` removes what none uses
// (ops::list_image_cache, ops::prune_image_cache).
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/privilege.hpp"
#include "haco/ops_images.hpp"

namespace haco::cli {
namespace {

std::string size_text(std::uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", bytes / double(1ull << 30));
  if (bytes >= (1ull << 20)) return fmt::format("{:.1f} MiB", bytes / double(1ull << 20));
  return fmt::format("{:.0f} KiB", bytes / 1024.0);
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

nlohmann::json entry_json(const ops::CacheEntry& e) {
  return {{"kind", e.kind},         {"digest", e.digest},       {"tree", e.tree},     {"source", e.source},
          {"bytes", e.bytes},       {"complete", e.complete},   {"fleets", e.fleets}, {"instances", e.instances}};
}

}  // namespace

void add_images_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("images", "List the image cache (tarball images, OCI layers): sizes and users");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "One JSON document instead of the table");
  auto* prune = cmd->add_subcommand("prune", "Remove the cache entries no instance uses");
  auto dry_run = std::make_shared<bool>(false);
  prune->add_flag("--dry-run", *dry_run, "Only list what would be removed");
  prune->footer(
      "Example: list what no fleet uses any more (run it again without --dry-run to remove it):\n"
      "  haco-fleet images prune --dry-run");
  cmd->require_subcommand(0, 1);
  cmd->footer(
      "Example: every cache entry with its size and the fleets using it, as JSON; then what no fleet uses,\n"
      "removed:\n"
      "  haco-fleet images --json\n"
      "  haco-fleet images prune");
  prune->callback([dry_run, &global, &exit_status] {
    if (!running_as_root("images prune")) {
      exit_status = kExitBadInput;
      return;
    }
    const ops::PruneResult r = ops::prune_image_cache(global.state_root, global.data_root, *dry_run);
    for (const auto& e : r.removed)
      std::printf("%s %s %s (%s)\n", *dry_run ? "would remove" : "removed", e.kind.c_str(), e.digest.substr(0, 12).c_str(),
                  size_text(e.bytes).c_str());
    std::printf("%s %zu entr%s, %s; %zu in use kept%s\n", *dry_run ? "would remove" : "removed", r.removed.size(),
                r.removed.size() == 1 ? "y" : "ies", size_text(r.bytes).c_str(), r.kept,
                r.staging_removed ? fmt::format("; {} leftover blob cop{} {}", r.staging_removed,
                                                r.staging_removed == 1 ? "y" : "ies",
                                                *dry_run ? "to remove" : "removed")
                                        .c_str()
                                  : "");
    exit_status = kExitOk;
  });
  cmd->callback([prune, json, &global, &exit_status] {
    if (prune->parsed()) return;
    if (!running_as_root("images")) {
      exit_status = kExitBadInput;
      return;
    }
    const auto entries = ops::list_image_cache(global.state_root, global.data_root);
    if (*json) {
      nlohmann::json items = nlohmann::json::array();
      for (const auto& e : entries) items.push_back(entry_json(e));
      std::printf("%s\n", nlohmann::json{{"data_root", global.data_root}, {"entries", items}}.dump(2).c_str());
      exit_status = kExitOk;
      return;
    }
    if (entries.empty()) {
      std::printf("no image in the cache under %s\n", global.data_root.c_str());
      exit_status = kExitOk;
      return;
    }
    std::uint64_t total = 0;
    std::printf("%-6s %-12s %10s  %s\n", "KIND", "DIGEST", "SIZE", "USED BY");
    for (const auto& e : entries) {
      total += e.bytes;
      std::string users = e.fleets.empty() ? "-" : joined(e.fleets);
      if (!e.complete) users += " (incomplete: made again when used)";
      std::printf("%-6s %-12s %10s  %s\n", e.kind.c_str(), e.digest.substr(0, 12).c_str(), size_text(e.bytes).c_str(),
                  users.c_str());
    }
    std::printf("%zu entr%s, %s\n", entries.size(), entries.size() == 1 ? "y" : "ies", size_text(total).c_str());
    exit_status = kExitOk;
  });
}

}  // namespace haco::cli
