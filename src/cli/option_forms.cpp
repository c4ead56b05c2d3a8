#include "cli/option_forms.hpp"

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/readiness.hpp"
#include "haco/supervisor.hpp"

namespace haco::cli {

// The parsers stay the one definition of each form; their own messages name
// the option already, so the option parser's line says what was expected.
CLI::Validator restart_policy_form() {
  return CLI::Validator(
      [](std::string& text) {
        try {
          supervisor::parse_restart_policy(text);
          return std::string();
        } catch (const InputError&) {
          return fmt::format("expected no, always, on-failure or on-failure:N (N >= 1), got '{}'", text);
        }
      },
      "");
}

CLI::Validator ready_form() {
  return CLI::Validator(
      [](std::string& text) {
        try {
          observe::parse_ready_spec(text);
          return std::string();
        } catch (const InputError&) {
          return fmt::format(
              "expected tcp or http:PATH (PATH starting with '/', without spaces or control characters), got '{}'",
              text);
        }
      },
      "");
}

}  // namespace haco::cli
