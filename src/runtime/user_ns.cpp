#include "runtime/user_ns.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "runtime/file_io.hpp"

namespace haco::runtime {
namespace {

bool has_effective_cap(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  check_sys(::syscall(SYS_capget, &header, data), "capget");
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

std::string map_text(const std::vector<IdMapping>& map) {
  std::string text;
  for (const auto& m : map) text += fmt::format("{} {} {}\n", m.inside, m.outside, m.count);
  return text;
}

bool maps_inside_zero(const std::vector<IdMapping>& map) {
  for (const auto& m : map)
    if (m.inside == 0 && m.count > 0) return true;
  return false;
}

}  // namespace

bool wants_user_namespace(const ContainerSpec& c) {
  return c.has_namespace(Namespace::user) || !c.uid_map.empty() || !c.gid_map.empty();
}

void write_id_maps(pid_t pid, const ContainerSpec& c) {
  std::string proc = fmt::format("/proc/{}/", pid);
  if (!c.gid_map.empty()) {
    if (!has_effective_cap(CAP_SETGID)) write_kernel_file(proc + "setgroups", "deny");
    write_kernel_file(proc + "gid_map", map_text(c.gid_map));
  }
  if (!c.uid_map.empty()) write_kernel_file(proc + "uid_map", map_text(c.uid_map));
}

void become_root(const ContainerSpec& c) {
  if (!wants_user_namespace(c)) return;
  if (!maps_inside_zero(c.uid_map) || !maps_inside_zero(c.gid_map))
    throw Error("the uid and gid mappings must both map id 0 inside the container");
  become_user(0, 0);
}

void become_user(uid_t uid, gid_t gid) {
  check_sys(::setresgid(gid, gid, gid), "setresgid", std::to_string(gid));
  // Refused (EPERM) only when setgroups was denied; the host's groups are
  // then unmapped anyway.
  if (::setgroups(0, nullptr) != 0 && errno != EPERM) throw Error::from_errno("setgroups", errno);
  check_sys(::setresuid(uid, uid, uid), "setresuid", std::to_string(uid));
}

}  // namespace haco::runtime
