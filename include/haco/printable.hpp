// Text from outside haco-fleet (a container's log, an init's error, a name
// from a definition) made safe to print on a terminal: escape sequences and
// other control characters cannot move the cursor, recolour or retitle the
// user's terminal, or forge lines.
#pragma once

#include <string>
#include <string_view>

namespace haco {

enum class LineBreaks { escape, keep };

// `text` with every C0 control (ESC, CR, BEL, ...), DEL, every C1 control
// (U+0080..U+009F) and every byte that is not part of valid UTF-8 written as
// \xNN (one per byte). With LineBreaks::keep, '\n' stays a line break.
// Everything else (printable ASCII, valid multi-byte UTF-8) is kept as is.
std::string printable(std::string_view text, LineBreaks breaks = LineBreaks::escape);

}  // namespace haco
