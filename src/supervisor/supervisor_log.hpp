// The supervisor log (<state root>/<fleet>/supervisor.log): the supervisor
// and the log writer write their own events there, on stderr.
#pragma once

#include <string>

namespace haco::supervisor {

// One line, stamped with the UTC time, flushed at once.
void log_line(const std::string& text);

}  // namespace haco::supervisor
