#include "cli/commands.hpp"
namespace haco::cli {
void add_expand_command(CLI::App&, GlobalOptions&, int&) {}
}
