// An instance's restart history as `ps --json` and `inspect --json` print it.
#pragma once

#include <nlohmann/json.hpp>

#include "haco/state.hpp"

namespace haco::cli {

// [{"at_unix_ms", "exit" ("exit 3", "signal 9 (Killed)"), "code", "signal",
//   "restarted", "stop_requested"}, ...], oldest first.
nlohmann::json recent_exits_json(const std::vector<state::RecentExit>& exits);

}  // namespace haco::cli
