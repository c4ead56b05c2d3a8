#include "haco/mountinfo.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "haco/error.hpp"

namespace haco {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<MountInfo> read_mountinfo(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error::from_errno("open", path, errno);
  std::vector<MountInfo> mounts;
  std::string line;
  while (std::getline(in, line)) {
    // id parent maj:min root mount-point options [optional...] - fstype source super-options
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream before(line.substr(0, dash));
    std::istringstream after(line.substr(dash + 3));
    std::string devno;
    MountInfo m;
    if (!(before >> m.id >> m.parent_id >> devno >> m.root >> m.mount_point)) continue;
    if (!(after >> m.fstype >> m.source >> m.super_options)) continue;
    if (std::sscanf(devno.c_str(), "%u:%u", &m.dev_major, &m.dev_minor) != 2) continue;
    m.root = unescape(m.root);
    m.mount_point = unescape(m.mount_point);
    m.source = unescape(m.source);
    m.super_options = unescape(m.super_options);
    mounts.push_back(std::move(m));
  }
  return mounts;
}

}  // namespace haco
