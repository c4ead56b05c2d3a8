// The options whose values have a form of their own (`--restart
// on-failure:3`, `--ready http:/index.php`): checked by the option parser, as
// the numeric ranges are, so that a bad value is refused with exit status 2
// and one line before the command does anything.
#pragma once

#include <CLI/CLI.hpp>

namespace haco::cli {

// no, always, on-failure or on-failure:N (N >= 1): supervisor::parse_restart_policy.
CLI::Validator restart_policy_form();
// tcp or http:PATH: observe::parse_ready_spec.
CLI::Validator ready_form();

}  // namespace haco::cli
