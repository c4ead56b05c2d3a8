#include "cli/option_ranges.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace haco::cli {
namespace {

bool parse_whole(const std::string& text, std::uint64_t& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

bool in(const WholeRange& range, const std::string& text) {
  std::uint64_t value = 0;
  return parse_whole(text, value) && value >= range.min && value <= range.max;
}

}  // namespace

std::string range_text(const WholeRange& range) { return fmt::format("{} to {}", range.min, range.max); }

std::string range_text(const SecondsRange& range) { return fmt::format("{:g} to {:g}", range.min, range.max); }

CLI::Validator whole_number_in(const WholeRange& range) {
  return CLI::Validator(
      [range](std::string& text) {
        if (in(range, text)) return std::string();
        return fmt::format("expected a whole number from {}, got '{}'", range_text(range), text);
      },
      "");
}

CLI::Validator whole_number_or_max_in(const WholeRange& range) {
  return CLI::Validator(
      [range](std::string& text) {
        if (text == "max" || in(range, text)) return std::string();
        return fmt::format("expected max or a whole number from {}, got '{}'", range_text(range), text);
      },
      "");
}

CLI::Validator seconds_in(const SecondsRange& range) {
  return CLI::Validator(
      [range](std::string& text) {
        double value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
        if (!text.empty() && ec == std::errc() && end == text.data() + text.size() && std::isfinite(value) &&
            value >= range.min && value <= range.max)
          return std::string();
        return fmt::format("expected seconds from {}, got '{}'", range_text(range), text);
      },
      "");
}

}  // namespace haco::cli
