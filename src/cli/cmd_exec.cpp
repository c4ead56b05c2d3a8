// haco-fleet exec: run a command inside a running instance (ops::exec); the
// command's exit status becomes exec's.
#include <cstdio>
#include <cstdlib>

#include "cli/commands.hpp"
#include "cli/privilege.hpp"
#include "haco/ops_exec.hpp"
#include "haco/printable.hpp"

namespace haco::cli {
namespace {

CLI::Validator environment_assignment_rule() {
  return CLI::Validator(
      [](std::string& assignment) {
        try {
          ops::check_environment_assignment(assignment);
          return std::string();
        } catch (const InputError& e) {
          return std::string(e.what());
        }
      },
      "KEY=VALUE");
}

}  // namespace

void add_exec_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* cmd = app.add_subcommand(
      "exec", "Run a command inside a running instance: its namespaces, cgroups, root, environment and restrictions");
  struct Options {
    std::string name;
    std::string target;
    std::vector<std::string> command;
    std::vector<std::string> environment;
    std::string workdir;
    std::uint32_t user = 0;
    bool tty = false;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("--name", options->name, "The fleet (needed when several are running)")->check(fleet_name_rule());
  cmd->add_flag("-t,--tty", options->tty,
                "Give the command a terminal of its own (haconiwa's attach); this terminal is put in raw mode "
                "meanwhile");
  auto* user = cmd->add_option("-u,--user", options->user,
                               "Run as this uid inside the container (gid the same number), which its uid and gid "
                               "maps must map; default root of the container")
                   ->check(CLI::Range(std::uint32_t(0), std::uint32_t(4294967294u)));
  cmd->add_option("-e,--env", options->environment,
                  "Set KEY=VALUE in the command's environment (repeatable); it starts as the init's")
      ->check(environment_assignment_rule())
      ->allow_extra_args(false);
  cmd->add_option("-w,--workdir", options->workdir,
                  "Working directory inside the container (absolute); default the init's");
  cmd->add_option("instance", options->target, "PORT or NAME of the instance")->required();
  cmd->add_option("command", options->command, "The command and its arguments; put -- before it")->required();
  cmd->footer(
      "Exit status: the command's own; 128+N when signal N killed it; 127 when it is not found, 126 when it\n"
      "cannot be executed; 1 when the instance is not running (stopped, exited, its init gone) or cannot be\n"
      "entered; 2 for bad input (no such fleet, port or name, --user outside the container's ids).\n"
      "Example: the os-release of port 10001 of the fleet phpinfo, then a shell there with a terminal:\n"
      "  haco-fleet exec --name phpinfo 10001 cat /etc/os-release\n"
      "  haco-fleet exec --name phpinfo -t 10001 sh\n"
      "A command with options of its own goes after --: haco-fleet exec 10001 -- ls -l /");
  cmd->callback([options, user, &global, &exit_status] {
    if (!running_as_root("exec")) {
      exit_status = kExitBadInput;
      return;
    }
    ops::ExecRequest request;
    request.state_root = global.state_root;
    request.data_root = global.data_root;
    request.fleet = options->name;
    request.instance = options->target;
    request.command = options->command;
    request.environment = options->environment;
    request.workdir = options->workdir;
    if (user->count() > 0) request.user = options->user;
    request.tty = options->tty;
    if (const char* term = std::getenv("TERM")) request.term = term;
    std::fflush(stdout);
    auto entry = ops::kernel_entry();
    auto result = ops::exec(request, *entry);
    if (result.end.how == runtime::CommandEnd::How::not_started)
      std::fprintf(stderr, "haco-fleet exec: %s\n", printable(result.end.error).c_str());
    exit_status = result.status;
  });
}

}  // namespace haco::cli
