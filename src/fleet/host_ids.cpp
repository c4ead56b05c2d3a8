// The ids a fleet must leave alone: the host's own users and groups, and the
// subordinate ranges given to other users.
#include <charconv>
#include <fstream>

#include "haco/fleet.hpp"

namespace haco::fleet {
namespace {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = line.find(sep, start);
    out.push_back(line.substr(start, end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

bool to_u32(const std::string& text, std::uint32_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// name:x:ID:... (passwd and group); a missing file contributes nothing.
void read_ids(const std::string& path, const char* what,
              std::vector<std::pair<std::uint32_t, std::string>>& out) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto fields = split(line, ':');
    std::uint32_t id;
    if (fields.size() >= 3 && to_u32(fields[2], id)) out.emplace_back(id, std::string(what) + " " + fields[0] + " in " + path);
  }
}

// name:start:count (subuid and subgid)
void read_ranges(const std::string& path, std::vector<HostIds::Range>& out) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto fields = split(line, ':');
    std::uint32_t start, count;
    if (fields.size() == 3 && to_u32(fields[1], start) && to_u32(fields[2], count) && count > 0)
      out.push_back({start, count, "the range of " + fields[0] + " in " + path});
  }
}

}  // namespace

HostIds read_host_ids(const std::string& etc_dir) {
  HostIds ids;
  read_ids(etc_dir + "/passwd", "user", ids.uids);
  read_ids(etc_dir + "/group", "group", ids.gids);
  read_ranges(etc_dir + "/subuid", ids.reserved_uid_ranges);
  read_ranges(etc_dir + "/subgid", ids.reserved_gid_ranges);
  return ids;
}

}  // namespace haco::fleet
