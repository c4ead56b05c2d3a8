// Linux capabilities by name and number, and the bounding set a container
// gets when its definition says nothing (docs/security.md, "Capabilities").
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace haco {

// Bit n stands for capability n (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
using CapabilitySet = std::uint64_t;

// The highest capability haco-fleet knows by name.
inline constexpr int kLastKnownCapability = 40;

inline constexpr CapabilitySet capability_bit(int cap) { return CapabilitySet{1} << cap; }

// "chown", "cap_chown", "CAP_CHOWN" or "Cap_Chown" -> 0; nullopt for any other name.
std::optional<int> capability_from_name(std::string_view name);
// 0 -> "chown" (the kernel's name without "cap_"); "" past kLastKnownCapability.
std::string_view capability_name(int cap);

// Every capability haco-fleet knows (0 .. kLastKnownCapability).
CapabilitySet all_known_capabilities();
// The default bounding set: chown, dac_override, fowner, fsetid, kill, setgid,
// setuid, setpcap, net_bind_service, sys_chroot, setfcap.
CapabilitySet default_capabilities();

// The names of the capabilities in `set`, in the kernel's order.
std::vector<std::string_view> capability_names(CapabilitySet set);

}  // namespace haco
