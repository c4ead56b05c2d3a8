#include <charconv>
#include <set>

#include "haco/error.hpp"
#include "haco/fleet.hpp"

namespace haco::fleet {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::uint16_t parse_port(std::string_view text, std::string_view token) {
  text = trim(text);
  unsigned long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    throw InputError("port range: '" + std::string(token) + "' is not a port or a range A-B");
  if (value < 1 || value > 65535)
    throw InputError("port range: '" + std::string(token) + "' is outside 1..65535");
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::vector<std::uint16_t> parse_port_range(std::string_view text) {
  if (trim(text).empty()) throw InputError("port range is empty (expected e.g. 10001-10100 or 10001,10005)");
  std::vector<std::uint16_t> ports;
  std::set<std::uint16_t> seen;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view token = trim(text.substr(start, comma - start));
    start = comma + 1;
    if (token.empty()) throw InputError("port range: empty part in '" + std::string(text) + "'");
    std::uint16_t first, last;
    if (auto dash = token.find('-'); dash != std::string_view::npos) {
      first = parse_port(token.substr(0, dash), token);
      last = parse_port(token.substr(dash + 1), token);
      if (last < first) throw InputError("port range: '" + std::string(token) + "' is reversed (write " +
                                         std::to_string(last) + "-" + std::to_string(first) + ")");
    } else {
      first = last = parse_port(token, token);
    }
    for (unsigned port = first; port <= last; ++port) {
      if (!seen.insert(static_cast<std::uint16_t>(port)).second)
        throw InputError("port range: port " + std::to_string(port) + " in '" + std::string(token) +
                         "' is given more than once");
      ports.push_back(static_cast<std::uint16_t>(port));
    }
  }
  return ports;
}

}  // namespace haco::fleet
