#include "cli/option_forms.hpp"

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/readiness.hpp"
#include "haco/supervisor.hpp"

namespace haco::cli {

namespace {

// A validator over `parse`, the one definition of the form: a text it
// refuses gets `expected` and the text quoted.
template <typename Parse>
CLI::Validator form(Parse parse, std::string expected) {
  return CLI::Validator(
      [parse, expected](std::string& text) {
        try {
          parse(text);
          return std::string();
        } catch (const InputError&) {
          return fmt::format("expected {}, got '{}'", expected, text);
        }
      },
      "");
}

}  // namespace

// The parsers stay the one definition of each form; their own messages name
// the option already, so the option parser's line says what was expected.
CLI::Validator restart_policy_form() {
  return form([](const std::string& text) { supervisor::parse_restart_policy(text); },
              "no, always, on-failure or on-failure:N (N >= 1)");
}

CLI::Validator ready_form() {
  return form([](const std::string& text) { observe::parse_ready_spec(text); },
              "tcp or http:PATH (PATH starting with '/', without spaces or control characters)");
}

}  // namespace haco::cli
