// security.capability values: a file capability names the user namespace
// root it is valid for (v3 "rootid"; v1/v2 mean host root). A shifted tree
// must carry the instance's root, never host root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace haco::rootfs {

inline constexpr const char* kCapabilityXattr = "security.capability";

// The value rewritten as v3 for `root_uid`; nullopt if `value` is not a
// valid capability (the caller drops it with a warning).
std::optional<std::string> rewrite_file_caps(const std::string& value, std::uint32_t root_uid);

// The rootid of a v3 value, 0 for v1/v2; nullopt if not a valid value.
std::optional<std::uint32_t> file_caps_rootid(const std::string& value);

}  // namespace haco::rootfs
