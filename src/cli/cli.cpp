#include <cstdio>
#include <cstdlib>

#include "cli/commands.hpp"
#include "haco/error.hpp"

namespace haco::cli {
namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{
      "haco-fleet: start, supervise and stop a fleet of isolated containers from one haconiwa\n"
      "definition (.haco) and a port range."};
  app.set_version_flag("--version", std::string("haco-fleet ") + HACO_VERSION);
  app.require_subcommand(1);

  GlobalOptions global;
  global.state_root = env_or("HACO_FLEET_ROOT", "/run/haco-fleet");
  global.data_root = env_or("HACO_FLEET_DATA_ROOT", "/var/lib/haco-fleet");
  app.add_option("--root", global.state_root,
                 "State root: fleet state, locks and sockets (env HACO_FLEET_ROOT)")
      ->capture_default_str();
  app.add_option("--data-root", global.data_root,
                 "Data root: image cache, overlay layers, instance data (env HACO_FLEET_DATA_ROOT)")
      ->capture_default_str();

  int exit_status = kExitOk;
  add_expand_command(app, global, exit_status);
  add_up_command(app, global, exit_status);
  add_ps_command(app, global, exit_status);
  add_down_command(app, global, exit_status);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  } catch (const InputError& e) {
    std::fprintf(stderr, "haco-fleet: %s\n", e.what());
    return kExitBadInput;
  } catch (const CLI::Error& e) {
    std::fprintf(stderr, "haco-fleet: %s\n", e.what());
    return kExitBadInput;
  } catch (const Error& e) {
    std::fprintf(stderr, "haco-fleet: %s\n", e.what());
    return kExitFailed;
  }
  return exit_status;
}

}  // namespace haco::cli
