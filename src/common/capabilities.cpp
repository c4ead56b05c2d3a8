#include "haco/capabilities.hpp"

#include <linux/capability.h>

#include <array>
#include <cctype>
#include <string>

namespace haco {
namespace {

// Indexed by the kernel's number (<linux/capability.h>).
constexpr std::array<std::string_view, kLastKnownCapability + 1> kCapabilityNames{
    "chown",           "dac_override",   "dac_read_search", "fowner",          "fsetid",
    "kill",            "setgid",         "setuid",          "setpcap",         "linux_immutable",
    "net_bind_service", "net_broadcast", "net_admin",       "net_raw",         "ipc_lock",
    "ipc_owner",       "sys_module",     "sys_rawio",       "sys_chroot",      "sys_ptrace",
    "sys_pacct",       "sys_admin",      "sys_boot",        "sys_nice",        "sys_resource",
    "sys_time",        "sys_tty_config", "mknod",           "lease",           "audit_write",
    "audit_control",   "setfcap",        "mac_override",    "mac_admin",       "syslog",
    "wake_alarm",      "block_suspend",  "audit_read",      "perfmon",         "bpf",
    "checkpoint_restore",
};
static_assert(CAP_LAST_CAP <= kLastKnownCapability, "<linux/capability.h> knows capabilities this table lacks");

// What a service needs to start as root and drop to its own user: own and
// change its files, signal its workers, switch ids, bind low ports in its own
// network namespace, chroot. Nothing that reaches the kernel as a whole
// (modules, raw I/O, clock, mounts, tracing, network configuration, device
// nodes).
constexpr std::array<int, 11> kDefaultCapabilities{
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,       CAP_SETGID,
    CAP_SETUID, CAP_SETPCAP,      CAP_SETFCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
};

}  // namespace

std::optional<int> capability_from_name(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view bare(lower);
  if (bare.rfind("cap_", 0) == 0) bare.remove_prefix(4);
  for (int cap = 0; cap <= kLastKnownCapability; ++cap)
    if (kCapabilityNames[static_cast<std::size_t>(cap)] == bare) return cap;
  return std::nullopt;
}

std::string_view capability_name(int cap) {
  if (cap < 0 || cap > kLastKnownCapability) return {};
  return kCapabilityNames[static_cast<std::size_t>(cap)];
}

CapabilitySet all_known_capabilities() { return (capability_bit(kLastKnownCapability) << 1) - 1; }

CapabilitySet default_capabilities() {
  CapabilitySet set = 0;
  for (int cap : kDefaultCapabilities) set |= capability_bit(cap);
  return set;
}

std::vector<std::string_view> capability_names(CapabilitySet set) {
  std::vector<std::string_view> names;
  for (int cap = 0; cap <= kLastKnownCapability; ++cap)
    if (set & capability_bit(cap)) names.push_back(capability_name(cap));
  return names;
}

}  // namespace haco
