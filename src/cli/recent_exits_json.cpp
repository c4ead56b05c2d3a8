#include "cli/recent_exits_json.hpp"

namespace haco::cli {

nlohmann::json recent_exits_json(const std::vector<state::RecentExit>& exits) {
  using nlohmann::json;
  json out = json::array();
  for (const auto& e : exits)
    out.push_back({{"at_unix_ms", e.exit.at_unix_ms},
                   {"exit", state::describe_exit(e.exit)},
                   {"code", e.exit.signal == 0 ? json(e.exit.code) : json()},
                   {"signal", e.exit.signal != 0 ? json(e.exit.signal) : json()},
                   {"restarted", e.restarted},
                   {"stop_requested", e.stop_requested}});
  return out;
}

}  // namespace haco::cli
