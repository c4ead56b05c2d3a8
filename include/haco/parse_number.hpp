// Whole-string decimal numbers, as ids appear in passwd, group and mapping
// text: no sign, no spaces, nothing after the digits.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace haco {

inline std::optional<std::uint32_t> parse_u32(std::string_view text) {
  std::uint32_t value = 0;
  if (text.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace haco
