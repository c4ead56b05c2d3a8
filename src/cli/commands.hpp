// The subcommands of haco-fleet. Each add_*_command registers one CLI11
// subcommand; its callback runs the command and stores the exit status.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/log_level.hpp"

namespace haco::cli {

// Exit statuses that mean something to scripts.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;    // some instances failed, or the operation failed
inline constexpr int kExitBadInput = 2;  // bad input: nothing was started or changed

struct GlobalOptions {
  std::string state_root;  // --root / HACO_FLEET_ROOT, default /run/haco-fleet
  std::string data_root;   // --data-root / HACO_FLEET_DATA_ROOT, default /var/lib/haco-fleet
  bool quiet = false;             // -q/--quiet: as --log-level warn
  std::string log_level = "info";  // --log-level

  LogLevel level() const { return quiet ? LogLevel::warn : log_level_named(log_level); }
};

// For every --name: haco::check_name's rule, so that a bad name (an empty one
// included) is refused with exit status 2 before the command does anything.
CLI::Validator fleet_name_rule();

void add_expand_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_up_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_ps_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_down_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_stop_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_start_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_restart_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_exec_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_inspect_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_reload_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_logs_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_metrics_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_images_command(CLI::App& app, GlobalOptions& global, int& exit_status);
void add_slurm_command(CLI::App& app, GlobalOptions& global, int& exit_status);

// Builds the whole command line; returns the exit status.
int run(int argc, char** argv);

}  // namespace haco::cli
