// haco-fleet logs: the instances' output from their log files (ops::logs),
// prefixed with the instance name like compose; -f follows until Ctrl-C or
// until the fleet is taken down.
#include <signal.h>
#include <sys/signalfd.h>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/privilege.hpp"
#include "haco/error.hpp"
#include "haco/open_files.hpp"
#include "haco/ops_logs.hpp"
#include "haco/state.hpp"

namespace haco::cli {
namespace {

// SIGINT and SIGTERM as a descriptor: following ends when it is readable,
// and the command exits 0.
UniqueFd stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  check_sys(::sigprocmask(SIG_BLOCK, &signals, nullptr), "sigprocmask");
  UniqueFd fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  check_sys(fd.get(), "signalfd");
  return fd;
}

}  // namespace

void add_logs_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand("logs", "Print the output of a fleet's instances, from their log files");
  struct Options {
    std::string name;
    bool follow = false;
    std::string since;
    std::size_t tail = 0;
    bool no_prefix = false;
    std::string ports;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("--name", options->name, "The fleet (needed when several are running)")->check(fleet_name_rule());
  cmd->add_flag("-f,--follow", options->follow,
                "Go on printing what the instances write, instances added later and restarts included, until "
                "Ctrl-C or until the fleet is taken down");
  cmd->add_option("--since", options->since,
                  "Only lines written at or after this time: RFC 3339 (2026-11-30T13:00:00Z) or a duration before "
                  "now (90s, 10m, 2h, 1d)")
      ->type_name("TIME");
  auto* tail = cmd->add_option("-n,--tail", options->tail, "Only the last N lines of each instance")
                   ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-prefix", options->no_prefix, "Print the lines without 'INSTANCE | ' before them");
  cmd->add_option("PORTS", options->ports, "Only the instances on these ports (10001-10003,10007); default: all")
      ->type_name("RANGES");
  cmd->footer(
      "Example: the last 20 lines of the instances on ports 10001-10003 of the fleet phpinfo, then what they\n"
      "write next:\n"
      "  haco-fleet logs --name phpinfo -n 20 -f 10001-10003");
  cmd->callback([options, tail, &global, &exit_status] {
    if (!running_as_root_for_logs("logs")) {
      exit_status = kExitBadInput;
      return;
    }
    ops::LogsRequest request;
    request.state_root = global.state_root;
    request.data_root = global.data_root;
    request.fleet = options->name;
    request.ports = options->ports;
    request.follow = options->follow;
    if (tail->count() > 0) request.window.tail = options->tail;
    if (!options->since.empty()) request.window.since_unix_ms = ops::parse_since(options->since, state::unix_now_ms());
    // A log per instance, <log>.1 too: as many descriptors as instances, twice.
    try {
      raise_open_file_limit();
    } catch (const Error&) {
      // The soft limit may still do for a small fleet.
    }
    UniqueFd stop;
    if (request.follow) {
      stop = stop_signals();
      request.stop_fd = stop.get();
    }
    ops::PrefixedLogStream sink(std::cout, std::cerr, !options->no_prefix);
    ops::logs(request, sink);
    exit_status = kExitOk;
  });
}

}  // namespace haco::cli
