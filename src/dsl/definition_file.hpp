// Reading a .haco file: haco::InputError ("reading the definition: open
// PATH: ...") when it cannot be read.
#pragma once

#include <string>

namespace haco::dsl {

std::string read_definition_file(const std::string& path);

}  // namespace haco::dsl
