// haco-fleet metrics: the fleets in the Prometheus text format
// (ops::collect_metrics, ops::format_metrics), on stdout or into a file
// replaced whole, for node-exporter's textfile collector.
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "cli/privilege.hpp"
#include "haco/atomic_file.hpp"
#include "haco/ops_metrics.hpp"
#include "haco/printable.hpp"

namespace haco::cli {

void add_metrics_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand(
      "metrics", "Print the fleets' metrics in the Prometheus text format: instances by state, restarts, start "
                 "latency per phase, cgroup cpu and memory per instance");
  struct Args {
    std::string fleet, output;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--name", args->fleet, "One fleet (default: every fleet)")->check(fleet_name_rule());
  cmd->add_option("--output", args->output,
                  "Write to FILE instead of stdout, replacing it whole (a temporary file renamed over it), as "
                  "node-exporter's textfile collector asks")
      ->type_name("FILE");
  cmd->footer(
      "Example: the fleet phpinfo's metrics for node-exporter's textfile collector:\n"
      "  haco-fleet metrics --name phpinfo --output /var/lib/prometheus/node-exporter/haco.prom");
  cmd->callback([args, &global, &exit_status] {
    if (!can_read_state_root("metrics", global.state_root)) {
      exit_status = kExitBadInput;
      return;
    }
    std::vector<std::string> unreadable;
    const std::string text =
        ops::format_metrics(ops::collect_metrics(global.state_root, global.data_root, args->fleet, &unreadable));
    // The other fleets are still written; the status says some were not.
    for (const auto& why : unreadable)
      std::fprintf(stderr, "haco-fleet: fleet %s (left out of the metrics)\n", printable(why).c_str());
    if (args->output.empty()) {
      std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
      // Readable by the collector, which need not run as root.
      write_file_atomically(args->output, text, 0644);
    }
    exit_status = unreadable.empty() ? kExitOk : kExitFailed;
  });
}

}  // namespace haco::cli
