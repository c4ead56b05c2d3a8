#include "runtime/container_user.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include "haco/error.hpp"
#include "haco/parse_number.hpp"

namespace haco::runtime {
namespace {

std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    std::size_t colon = line.find(':', pos);
    out.push_back(line.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
    if (colon == std::string::npos) return out;
    pos = colon + 1;
  }
}

// The lines of a passwd or group file with at least `min_fields` fields.
std::vector<std::vector<std::string>> records(const std::string& text, std::size_t min_fields) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.front() == '#') continue;
    auto f = fields(line);
    if (f.size() >= min_fields) out.push_back(std::move(f));
  }
  return out;
}

bool in_map(const std::vector<IdMapping>& map, std::uint32_t id) {
  if (map.empty()) return true;
  for (const IdMapping& m : map)
    if (id >= m.inside && id - m.inside < m.count) return true;
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

ContainerUser resolve_container_user(const std::string& user, const std::string& passwd, const std::string& group,
                                     const std::vector<IdMapping>& uid_map, const std::vector<IdMapping>& gid_map) {
  const std::size_t colon = user.find(':');
  const std::string user_part = user.substr(0, colon);
  const std::string group_part = colon == std::string::npos ? "" : user.substr(colon + 1);
  if (user_part.empty() || (colon != std::string::npos && group_part.empty()))
    throw Error(fmt::format("user '{}': expected NAME, UID, UID:GID or NAME:GROUP", user));
  const auto users = records(passwd, 4);
  const auto groups = records(group, 3);

  ContainerUser out;
  std::string name;
  std::optional<std::uint32_t> passwd_gid;
  if (auto uid = parse_u32(user_part)) {
    out.uid = *uid;
    for (const auto& u : users)
      if (parse_u32(u[2]) == uid) {
        name = u[0];
        passwd_gid = parse_u32(u[3]);
        break;
      }
  } else {
    for (const auto& u : users)
      if (u[0] == user_part) {
        auto id = parse_u32(u[2]);
        if (!id) throw Error(fmt::format("user '{}': /etc/passwd gives it the uid '{}'", user, u[2]));
        out.uid = *id;
        name = u[0];
        passwd_gid = parse_u32(u[3]);
        break;
      }
    if (name.empty()) throw Error(fmt::format("user '{}': no such user in the container's /etc/passwd", user_part));
  }
  if (group_part.empty()) {
    out.gid = passwd_gid ? *passwd_gid : out.uid;
  } else if (auto gid = parse_u32(group_part)) {
    out.gid = *gid;
  } else {
    bool found = false;
    for (const auto& g : groups)
      if (g[0] == group_part) {
        auto id = parse_u32(g[2]);
        if (!id) throw Error(fmt::format("group '{}': /etc/group gives it the gid '{}'", group_part, g[2]));
        out.gid = *id;
        found = true;
        break;
      }
    if (!found) throw Error(fmt::format("group '{}': no such group in the container's /etc/group", group_part));
  }
  // Supplementary groups: those listing the user by name.
  if (!name.empty())
    for (const auto& g : groups) {
      if (g.size() < 4) continue;
      std::istringstream members(g[3]);
      std::string member;
      while (std::getline(members, member, ','))
        if (member == name)
          if (auto id = parse_u32(g[2]); id && *id != out.gid) out.groups.push_back(*id);
    }
  if (!in_map(uid_map, out.uid))
    throw Error(fmt::format("user '{}' is uid {}, outside the instance's uid mapping", user, out.uid));
  if (!in_map(gid_map, out.gid))
    throw Error(fmt::format("user '{}' has gid {}, outside the instance's gid mapping", user, out.gid));
  std::erase_if(out.groups, [&](gid_t g) { return !in_map(gid_map, g); });
  return out;
}

void take_container_user(const ContainerSpec& c) {
  if (c.user.empty()) return;
  const ContainerUser u =
      resolve_container_user(c.user, read_file("/etc/passwd"), read_file("/etc/group"), c.uid_map, c.gid_map);
  // Permitted capabilities survive the uid change; effective is raised again
  // from them below. exec then drops them all (a non-root uid, no file caps).
  check_sys(::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl PR_SET_KEEPCAPS");
  // Refused (EPERM) only when setgroups was denied for the namespace.
  if (::setgroups(u.groups.size(), u.groups.data()) != 0 && errno != EPERM)
    throw Error::from_errno("setgroups", c.user, errno);
  check_sys(::setresgid(u.gid, u.gid, u.gid), "setresgid", std::to_string(u.gid));
  check_sys(::setresuid(u.uid, u.uid, u.uid), "setresuid", std::to_string(u.uid));
  check_sys(::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl PR_SET_KEEPCAPS");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  check_sys(::syscall(SYS_capget, &header, data), "capget");
  for (auto& word : data) word.effective = word.permitted;
  check_sys(::syscall(SYS_capset, &header, data), "capset");
}

}  // namespace haco::runtime
