// The one rule for fleet and instance names. A name becomes a directory under
// the state root and the data root, a cgroup directory and a hostname, so it
// is checked before any path is built from it:
//
//   1 to 63 characters from A-Z a-z 0-9 _ . -, the first a letter or a digit,
//   and no ".." anywhere ([A-Za-z0-9][A-Za-z0-9_.-]{0,62}).
//
// So no name is empty, ".", "..", hidden, an option ("-x"), contains a slash
// or a control character, or is longer than a hostname may be.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace haco {

inline constexpr std::size_t kMaxNameLength = 63;

// Why `name` breaks the rule ("contains '/'"); nullopt when it is valid.
std::optional<std::string> name_problem(std::string_view name);

bool is_valid_name(std::string_view name);

// Throws haco::InputError quoting the name (escaped for the terminal) when it
// breaks the rule: "fleet name '../x' is not valid: it starts with '.' (...)".
// `what` says which name it is ("fleet name", "instance name").
void check_name(std::string_view what, std::string_view name);

}  // namespace haco
