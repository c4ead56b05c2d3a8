// Per-instance log files with a size cap and one rotated generation.
#pragma once

#include <cstdint>
#include <string>

namespace haco::supervisor {

// Creates the log's directory (private: layout::make_private_directory) and
// the file, mode 0600 (empty, or kept as it is).
void prepare_instance_log(const std::string& path);
// When `path` is larger than `max_bytes`: copies it to `path`.1 (replacing the
// previous generation) and truncates it. Returns whether it rotated.
bool rotate_instance_log(const std::string& path, std::uint64_t max_bytes);

}  // namespace haco::supervisor
