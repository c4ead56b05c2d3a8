// Whole-file reads and single-write writes of small kernel files (cgroup
// files, /proc/PID/uid_map), each with the failing call and path in its error.
#pragma once

#include <string>
#include <string_view>

namespace haco {

std::string read_text_file(const std::string& path);
// One write(2) of `content` (kernel files want the value in one write), no
// O_CREAT: the file must exist.
void write_kernel_file(const std::string& path, std::string_view content);

}  // namespace haco
