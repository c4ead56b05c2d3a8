// The names by which config.seccomp.filter's actions and comparisons travel
// in the spec's JSON form.
#include <array>
#include <utility>

#include "haco/spec.hpp"

namespace haco {
namespace {

constexpr std::array<std::pair<std::string_view, SeccompAction>, 3> kActionNames{{
    {"allow", SeccompAction::allow},
    {"kill", SeccompAction::kill},
    {"trap", SeccompAction::trap},
}};

constexpr std::array<std::pair<std::string_view, SeccompCompare>, 7> kCompareNames{{
    {"eq", SeccompCompare::eq},
    {"ne", SeccompCompare::ne},
    {"lt", SeccompCompare::lt},
    {"le", SeccompCompare::le},
    {"gt", SeccompCompare::gt},
    {"ge", SeccompCompare::ge},
    {"masked_eq", SeccompCompare::masked_eq},
}};

template <typename T, std::size_t N>
std::optional<T> value_named(const std::array<std::pair<std::string_view, T>, N>& table, std::string_view name) {
  for (const auto& [n, value] : table)
    if (n == name) return value;
  return std::nullopt;
}

template <typename T, std::size_t N>
std::string_view name_of(const std::array<std::pair<std::string_view, T>, N>& table, T value) {
  for (const auto& [n, v] : table)
    if (v == value) return n;
  return "?";
}

}  // namespace

std::optional<SeccompAction> seccomp_action_from_name(std::string_view name) {
  return value_named(kActionNames, name);
}

std::string_view seccomp_action_name(SeccompAction a) { return name_of(kActionNames, a); }

std::optional<SeccompCompare> seccomp_compare_from_name(std::string_view name) {
  return value_named(kCompareNames, name);
}

std::string_view seccomp_compare_name(SeccompCompare c) { return name_of(kCompareNames, c); }

}  // namespace haco
