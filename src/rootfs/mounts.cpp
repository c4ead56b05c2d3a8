#include "rootfs/mounts.hpp"

#include <fstream>
#include <sstream>

#include "haco/error.hpp"

namespace haco::rootfs {
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

std::string without_trailing_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::vector<std::string> mounts_at_or_under(const std::string& path) {
  const std::string base = without_trailing_slash(path);
  std::ifstream in("/proc/self/mountinfo");
  if (!in) throw Error::from_errno("open", "/proc/self/mountinfo", errno);
  std::vector<std::string> found;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    mount_point = unescape(mount_point);
    if (mount_point == base || mount_point.rfind(base + "/", 0) == 0) found.push_back(mount_point);
  }
  return found;
}

std::string overlay_using_upper(const std::string& upper) {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) throw Error::from_errno("open", "/proc/self/mountinfo", errno);
  const std::string needle = "upperdir=" + upper + ",";
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    std::size_t dash = line.find(" - overlay ");
    if (dash != std::string::npos && (line + ",").find(needle, dash) != std::string::npos)
      return unescape(mount_point);
  }
  return {};
}

bool is_mount_point(const std::string& path) {
  const std::string base = without_trailing_slash(path);
  for (const std::string& m : mounts_at_or_under(base))
    if (m == base) return true;
  return false;
}

}  // namespace haco::rootfs
