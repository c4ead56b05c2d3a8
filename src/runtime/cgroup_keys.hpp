// The controller a cgroup key belongs to (the table of keys itself lives in
// cgroup_keys.cpp, behind validate_settings and translate_to_v1/v2).
#pragma once

#include <string>
#include <string_view>

namespace haco::cgroups {

// "cpu" for "cpu.cfs_quota_us", "io" for "io.weight".
std::string controller_of(std::string_view key);

}  // namespace haco::cgroups
