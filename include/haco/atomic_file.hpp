// Files replaced whole: a reader, or the host after a crash or a power cut,
// finds either the previous version or the new one, never a part.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace haco {

// Replaces `path` with `content`: a temporary file made beside it (O_EXCL,
// so no file or symlink already there is written through), given exactly
// `mode`, written, fsync'd, renamed over `path`, and the directory fsync'd.
// When it returns the new file is on disk; until then `path` is its previous
// version or absent. On failure the temporary file is removed and the
// haco::Error names the call and the path.
void write_file_atomically(const std::string& path, std::string_view content, mode_t mode);

}  // namespace haco
