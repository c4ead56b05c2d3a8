// --restart no | on-failure[:N] | always
#include <algorithm>
#include <charconv>

#include "haco/error.hpp"
#include "haco/supervisor.hpp"

namespace haco::supervisor {

RestartPolicy parse_restart_policy(std::string_view text) {
  auto bad = [&] {
    return InputError("--restart '" + std::string(text) + "': expected no, always, on-failure or on-failure:N (N >= 1)");
  };
  if (text == "no") return {RestartPolicy::Mode::no, 0};
  if (text == "always") return {RestartPolicy::Mode::always, 0};
  constexpr std::string_view kOnFailure = "on-failure";
  if (text.substr(0, kOnFailure.size()) != kOnFailure) throw bad();
  auto rest = text.substr(kOnFailure.size());
  if (rest.empty()) return {RestartPolicy::Mode::on_failure, 0};
  if (rest[0] != ':' || rest.size() == 1) throw bad();
  unsigned n = 0;
  auto digits = rest.substr(1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || n == 0) throw bad();
  return {RestartPolicy::Mode::on_failure, n};
}

std::string format_restart_policy(const RestartPolicy& policy) {
  switch (policy.mode) {
    case RestartPolicy::Mode::no:
      return "no";
    case RestartPolicy::Mode::always:
      return "always";
    case RestartPolicy::Mode::on_failure:
      return policy.max_restarts ? "on-failure:" + std::to_string(policy.max_restarts) : "on-failure";
  }
  return "no";
}

bool should_restart(const RestartPolicy& policy, const state::ExitRecord& exit, unsigned restarts) {
  if (policy.max_restarts != 0 && restarts >= policy.max_restarts) return false;
  switch (policy.mode) {
    case RestartPolicy::Mode::no:
      return false;
    case RestartPolicy::Mode::always:
      return true;
    case RestartPolicy::Mode::on_failure:
      return exit.signal != 0 || exit.code != 0;
  }
  return false;
}

std::chrono::milliseconds restart_delay(unsigned restarts) {
  auto delay = std::chrono::milliseconds(100) * (1u << std::min(restarts, 6u));
  return std::min(delay, std::chrono::milliseconds(5000));
}

}  // namespace haco::supervisor
