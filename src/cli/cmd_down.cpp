// haco-fleet down: stop a fleet and remove everything it put on the host.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/option_ranges.hpp"
#include "haco/error.hpp"
#include "haco/observe.hpp"
#include "haco/printable.hpp"
#include "haco/state.hpp"
#include "haco/supervisor.hpp"
#include "haco/unique_fd.hpp"

namespace haco::cli {

namespace {

// The fleet's lock; an `up` that holds it (still starting instances, or
// `up --foreground` keeping its fleet) is interrupted as Ctrl-C would: it
// stops and removes what it started, then `down` takes the rest.
state::FleetLock lock_interrupting_up(const state::FleetPaths& paths, observe::ProgressReporter& progress) {
  if (auto lock = state::FleetLock::try_acquire(paths, "down")) return std::move(*lock);
  if (auto holder = state::FleetLock::holder(paths); holder && holder->role == "up") {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, holder->process.pid, 0)));
    if (pidfd && state::is_alive(holder->process)) {
      progress.message(fmt::format("{}: an `up` is in progress (pid {}): interrupting it", paths.fleet,
                                   holder->process.pid));
      ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGINT, nullptr, 0);
    }
  }
  return state::FleetLock::acquire(paths, true, "down");
}

}  // namespace

void add_down_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("down", "Stop a fleet and remove its processes, cgroups, mounts and state");
  struct Options {
    std::string name;
    bool all = false;
    double timeout_s = 10;
    bool purge = false;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("--name", options->name, "The fleet to stop (needed when several are running)")
      ->check(fleet_name_rule());
  cmd->add_flag("--all", options->all, "Stop every fleet");
  cmd->add_option("--timeout", options->timeout_s,
                  "Seconds between the stop signal and SIGKILL, " + range_text(kDownTimeoutRange) + " (0: SIGKILL at once)")
      ->check(seconds_in(kDownTimeoutRange))
      ->capture_default_str();
  cmd->add_flag("--purge", options->purge, "Also remove the rootfs trees and instance logs");
  cmd->callback([options, &global, &exit_status] {
    if (options->all && !options->name.empty()) throw InputError("down: --name and --all exclude each other");
    auto existing = state::list_fleets(global.state_root);
    std::vector<std::string> fleets;
    if (!options->name.empty()) {
      state::FleetPaths paths{global.state_root, global.data_root, options->name};
      // A state that is unreadable, or lost while the fleet's cgroups, claims
      // or unit remain, still has something to take down.
      if (!std::filesystem::exists(paths.state_file()) && !supervisor::fleet_left_traces(paths))
        throw InputError("no fleet named '" + options->name + "' under " + global.state_root);
      fleets = {options->name};
    } else if (options->all) {
      fleets = existing;
      for (const auto& f : supervisor::fleets_without_state(global.state_root)) fleets.push_back(f);
    } else if (existing.size() <= 1) {
      fleets = existing;
    } else {
      std::string names;
      for (const auto& f : existing) names += (names.empty() ? "" : ", ") + f;
      throw InputError(fmt::format("{} fleets are running ({}): say which with --name FLEET, or --all",
                                   existing.size(), names));
    }
    if (fleets.empty()) {
      std::printf("no fleet under %s\n", global.state_root.c_str());
      exit_status = kExitOk;
      return;
    }
    observe::ProgressReporter progress(
        std::cerr, observe::ProgressOptions{observe::progress_style_for(STDERR_FILENO), "down", {"down"}, fleets.size(),
                                            std::chrono::milliseconds(100), observe::terminal_width(STDERR_FILENO)});
    exit_status = kExitOk;
    for (const auto& fleet : fleets) {
      state::FleetPaths paths{global.state_root, global.data_root, fleet};
      supervisor::TeardownOptions teardown;
      teardown.timeout = std::chrono::milliseconds(std::lround(options->timeout_s * 1000));
      teardown.purge = options->purge;
      teardown.progress = [&](std::string_view step) { progress.message(fmt::format("{}: {}", fleet, step)); };
      try {
        auto lock = lock_interrupting_up(paths, progress);
        supervisor::teardown_fleet(paths, teardown);
        progress.step("down", fleet);
      } catch (const Error& e) {
        progress.failed(fleet, printable(e.what(), LineBreaks::keep));
        exit_status = kExitFailed;
      }
    }
    progress.finish();
  });
}

}  // namespace haco::cli
