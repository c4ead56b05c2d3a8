#include "haco/printable.hpp"

#include <cstdint>

namespace haco {
namespace {

void append_escaped(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char b : bytes) {
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
}

// The length of the valid UTF-8 sequence at the start of `s` (0 when it is
// not one: a stray continuation byte, a truncated or overlong sequence, a
// surrogate or a code point above U+10FFFF), and its code point.
std::size_t utf8_sequence(std::string_view s, char32_t& code_point) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char lead = byte(0);
  std::size_t length;
  char32_t min;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2, min = 0x80, code_point = lead & 0x1f;
  else if (lead >= 0xe0 && lead <= 0xef) length = 3, min = 0x800, code_point = lead & 0x0f;
  else if (lead >= 0xf0 && lead <= 0xf4) length = 4, min = 0x10000, code_point = lead & 0x07;
  else return 0;
  if (s.size() < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3f);
  }
  if (code_point < min || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) return 0;
  return length;
}

}  // namespace

std::string printable(std::string_view text, LineBreaks breaks) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      bool control = c < 0x20 || c == 0x7f;
      bool allowed = c == '\n' && breaks == LineBreaks::keep;
      if (control && !allowed) append_escaped(out, text.substr(i, 1));
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t code_point = 0;
    std::size_t length = utf8_sequence(text.substr(i), code_point);
    if (length == 0) {
      append_escaped(out, text.substr(i, 1));
      ++i;
    } else if (code_point >= 0x80 && code_point <= 0x9f) {
      append_escaped(out, text.substr(i, length));  // C1 controls: CSI (U+009B) and friends
      i += length;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

}  // namespace haco
