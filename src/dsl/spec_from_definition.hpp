// The checks that need the whole definition (a name, a command, a rootfs) and
// the mapping from what the prelude exported to a ContainerSpec.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "haco/spec.hpp"

namespace haco::dsl {

// `definition` is Haconiwa::Base#__export; `file_name` names the .haco file
// in errors. Throws haco::InputError.
ContainerSpec spec_from_definition(const nlohmann::json& definition, const std::string& file_name);

// "/a/b/../c/" -> "/a/c"; keeps it absolute.
std::string normalize_absolute_path(const std::string& path);

}  // namespace haco::dsl
