#include "haco/names.hpp"

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/printable.hpp"

namespace haco {
namespace {

bool letter_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

std::string shown(char c) { return c >= 0x20 && c < 0x7f ? fmt::format("'{}'", c) : printable(std::string(1, c)); }

}  // namespace

std::optional<std::string> name_problem(std::string_view name) {
  if (name.empty()) return "it is empty";
  if (name.size() > kMaxNameLength)
    return fmt::format("it is {} characters long, more than {}", name.size(), kMaxNameLength);
  if (!letter_or_digit(name.front())) return "it starts with " + shown(name.front());
  for (char c : name)
    if (!letter_or_digit(c) && c != '_' && c != '.' && c != '-') return "it contains " + shown(c);
  if (name.find("..") != std::string_view::npos) return "it contains \"..\"";
  return std::nullopt;
}

bool is_valid_name(std::string_view name) { return !name_problem(name); }

void check_name(std::string_view what, std::string_view name) {
  if (auto problem = name_problem(name))
    throw InputError(fmt::format("{} '{}' is not valid: {} (a name is 1 to {} characters from A-Z a-z 0-9 _ . -, "
                                 "starting with a letter or digit, without \"..\")",
                                 what, printable(name), *problem, kMaxNameLength));
}

}  // namespace haco
