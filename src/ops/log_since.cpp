// `logs --since`: an RFC 3339 time or a duration before now.
#include <time.h>

#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops_logs.hpp"

namespace haco::ops {
namespace {

InputError bad_since(std::string_view text) {
  return InputError(fmt::format("--since '{}': not a time (RFC 3339, like 2026-11-30T13:00:00Z or "
                                "2026-11-30T22:00:00+09:00) nor a duration (like 90s, 10m, 2h, 1d, 1h30m)",
                                text));
}

// Exactly `digits` decimal digits of `text` at `at`, or nullopt.
std::optional<int> digits_at(std::string_view text, std::size_t at, std::size_t digits) {
  if (at + digits > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = at; i < at + digits; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto year = digits_at(text, 0, 4), month = digits_at(text, 5, 2), day = digits_at(text, 8, 2);
  auto hour = digits_at(text, 11, 2), minute = digits_at(text, 14, 2), second = digits_at(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
      text[13] != ':' || text[16] != ':')
    return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60)
    return std::nullopt;
  std::size_t at = 19;
  std::int64_t millis = 0;
  if (at < text.size() && text[at] == '.') {
    std::size_t first = ++at;
    std::int64_t scale = 100;
    while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
      millis += (text[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == first) return std::nullopt;
  }
  if (at >= text.size()) return std::nullopt;
  std::int64_t offset_s = 0;
  if (text[at] == 'Z' || text[at] == 'z') {
    ++at;
  } else if (text[at] == '+' || text[at] == '-') {
    auto oh = digits_at(text, at + 1, 2), om = digits_at(text, at + 4, 2);
    if (!oh || !om || at + 3 >= text.size() || text[at + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset_s = (text[at] == '+' ? 1 : -1) * (*oh * 3600 + *om * 60);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  tm fields{};
  fields.tm_year = *year - 1900;
  fields.tm_mon = *month - 1;
  fields.tm_mday = *day;
  fields.tm_hour = *hour;
  fields.tm_min = *minute;
  fields.tm_sec = std::min(*second, 59);
  const time_t utc = ::timegm(&fields);
  // timegm normalises 31 February into March: a day that does not exist is refused.
  if (fields.tm_mday != *day || fields.tm_mon != *month - 1) return std::nullopt;
  return (std::int64_t(utc) - offset_s) * 1000 + millis;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    std::int64_t number = 0;
    auto [end, ec] = std::from_chars(text.data() + at, text.data() + text.size(), number);
    if (ec != std::errc() || end == text.data() + at || number < 0) return std::nullopt;
    at = static_cast<std::size_t>(end - text.data());
    std::int64_t unit = 0;
    if (text.substr(at, 2) == "ms") {
      unit = 1;
      at += 2;
    } else if (at < text.size()) {
      switch (text[at]) {
        case 's': unit = 1000; break;
        case 'm': unit = 60'000; break;
        case 'h': unit = 3'600'000; break;
        case 'd': unit = 86'400'000; break;
        default: return std::nullopt;
      }
      ++at;
    } else {
      return std::nullopt;  // a number needs its unit
    }
    // Ten years of milliseconds: far below overflow.
    if (number > 315'360'000'000 / (unit < 1000 ? 1 : unit / 1000)) return std::nullopt;
    total += number * unit;
  }
  return total;
}

}  // namespace

std::int64_t parse_since(std::string_view text, std::int64_t now_unix_ms) {
  if (auto at = parse_rfc3339(text)) return *at;
  if (auto ago = parse_duration_ms(text)) return now_unix_ms - *ago;
  throw bad_since(text);
}

}  // namespace haco::ops
