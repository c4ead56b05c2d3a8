// haco-fleet down: stop a fleet and remove everything it put on the host
// (ops::down).
#include <cmath>
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/option_ranges.hpp"
#include "cli/privilege.hpp"
#include "cli/progress_sink.hpp"
#include "haco/ops.hpp"

namespace haco::cli {

void add_down_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("down", "Stop a fleet and remove its processes, cgroups, mounts and state");
  struct Options {
    std::string name;
    bool all = false;
    double timeout_s = 10;
    bool purge = false;
    std::string ports;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("--name", options->name, "The fleet to stop (needed when several are running)")
      ->check(fleet_name_rule());
  cmd->add_flag("--all", options->all, "Stop every fleet");
  cmd->add_option("--timeout", options->timeout_s,
                  "Seconds between the stop signal and SIGKILL, " + range_text(kDownTimeoutRange) + " (0: SIGKILL at once)")
      ->check(seconds_in(kDownTimeoutRange))
      ->capture_default_str();
  cmd->add_flag("--purge", options->purge,
                "Also remove the rootfs trees and instance logs (after a plain down: what it kept)");
  cmd->add_option("--ports", options->ports,
                  "Only the instances on these ports leave the fleet, which keeps running (scale down); their "
                  "names, ports and ids are free again")
      ->excludes("--all");
  cmd->footer(
      "Example: stop the fleet phpinfo, SIGKILL after 5 seconds, and remove its rootfs trees and logs too:\n"
      "  haco-fleet down --name phpinfo --timeout 5 --purge\n"
      "Scale down: remove the instances on ports 10091-10100 of the fleet phpinfo, keeping the others:\n"
      "  haco-fleet down --name phpinfo --ports 10091-10100");
  cmd->callback([options, &global, &exit_status] {
    if (!running_as_root("down")) {
      exit_status = kExitBadInput;
      return;
    }
    ops::DownRequest request;
    request.state_root = global.state_root;
    request.data_root = global.data_root;
    request.fleet = options->name;
    request.all = options->all;
    request.timeout = std::chrono::milliseconds(std::lround(options->timeout_s * 1000));
    request.purge = options->purge;
    request.ports = options->ports;
    auto supervisor = ops::control_supervisor();
    ProgressSink sink("down", {"down"}, global.level());
    auto result = ops::down(request, *supervisor, sink);
    if (result.fleets.empty()) std::printf("no fleet under %s\n", global.state_root.c_str());
    if (!result.removed.empty())
      std::printf("fleet %s: %zu instance%s removed\n", result.fleets.front().c_str(), result.removed.size(),
                  result.removed.size() == 1 ? "" : "s");
    exit_status = result.failed == 0 ? kExitOk : kExitFailed;
  });
}

}  // namespace haco::cli
