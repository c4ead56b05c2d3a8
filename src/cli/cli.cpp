#include <cstdio>

#include "cli/commands.hpp"
#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/names.hpp"
#include "haco/printable.hpp"

namespace haco::cli {
CLI::Validator fleet_name_rule() {
  return CLI::Validator(
      [](std::string& name) {
        try {
          check_name("fleet name", name);
          return std::string();
        } catch (const InputError& e) {
          return std::string(e.what());
        }
      },
      "NAME");
}

namespace {

// Messages can quote a definition, a name or what a container wrote.
void print_error(std::string_view message) {
  std::fprintf(stderr, "haco-fleet: %s\n", printable(message, LineBreaks::keep).c_str());
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{
      "haco-fleet: start, supervise and stop a fleet of isolated containers from one haconiwa\n"
      "definition (.haco) and a port range."};
  app.set_version_flag("--version", std::string("haco-fleet ") + HACO_VERSION);
  app.require_subcommand(1);
  // One line, as every other error: the option parser's own errors too (an
  // option outside its range names the option, the range and the value).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "haco-fleet: " + printable(e.what(), LineBreaks::keep) + "\n";
  });

  GlobalOptions global;
  global.state_root = "/run/haco-fleet";
  global.data_root = layout::kDefaultDataRoot;
  // An empty variable counts as unset.
  app.add_option("--root", global.state_root, "State root: fleet state, locks and sockets")
      ->envname("HACO_FLEET_ROOT")
      ->capture_default_str();
  app.add_option("--data-root", global.data_root, "Data root: image cache, overlay layers, instance data")
      ->envname("HACO_FLEET_DATA_ROOT")
      ->capture_default_str();
  auto* log_level = app.add_option("--log-level", global.log_level,
                                   "What is said on stderr: error, warn, info (progress too) or debug (every progress "
                                   "event on a line of its own); stdout is not affected")
                        ->check(CLI::IsMember(std::vector<std::string>(std::begin(kLogLevelNames),
                                                                      std::end(kLogLevelNames))))
                        ->capture_default_str();
  app.add_flag("-q,--quiet", global.quiet, "Only warnings and errors on stderr (--log-level warn)")->excludes(log_level);

  int exit_status = kExitOk;
  add_expand_command(app, global, exit_status);
  add_up_command(app, global, exit_status);
  add_ps_command(app, global, exit_status);
  add_down_command(app, global, exit_status);
  add_stop_command(app, global, exit_status);
  add_start_command(app, global, exit_status);
  add_restart_command(app, global, exit_status);
  add_exec_command(app, global, exit_status);
  add_inspect_command(app, global, exit_status);
  add_reload_command(app, global, exit_status);
  add_logs_command(app, global, exit_status);
  add_metrics_command(app, global, exit_status);
  add_images_command(app, global, exit_status);
  add_slurm_command(app, global, exit_status);

  // After the subcommands: each has its own, a footer set earlier would be
  // inherited by them.
  app.footer(
      "Example: a fleet of 100 phpinfo containers, listed, then stopped:\n"
      "  haco-fleet up --ports 10001-10100 templates/phpinfo.haco\n"
      "  haco-fleet ps\n"
      "  haco-fleet down\n"
      "Each command's --help has an example of its own.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  } catch (const InputError& e) {
    print_error(e.what());
    return kExitBadInput;
  } catch (const CLI::Error& e) {
    print_error(e.what());
    return kExitBadInput;
  } catch (const Error& e) {
    print_error(e.what());
    return kExitFailed;
  }
  return exit_status;
}

}  // namespace haco::cli
