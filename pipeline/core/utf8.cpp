#include "pipeline/core/utf8.hpp"

#include "pipeline/core/errors.hpp"

namespace saepipe {

std::vector<CodePoint> decode_utf8(std::string_view s, const std::string& where) {
  std::vector<CodePoint> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c0 = static_cast<unsigned char>(s[i]);
    int len = c0 < 0x80 ? 1 : (c0 >> 5) == 0x6 ? 2 : (c0 >> 4) == 0xE ? 3 : (c0 >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + size_t(len) > s.size())
      user_error(where + ": invalid UTF-8 at byte " + std::to_string(i));
    char32_t cp = len == 1 ? c0 : len == 2 ? (c0 & 0x1F) : len == 3 ? (c0 & 0x0F) : (c0 & 0x07);
    for (int k = 1; k < len; ++k) {
      const auto ck = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((ck >> 6) != 0x2) user_error(where + ": invalid UTF-8 at byte " + std::to_string(i));
      cp = (cp << 6) | (ck & 0x3F);
    }
    const char32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      user_error(where + ": invalid UTF-8 at byte " + std::to_string(i));
    out.push_back({cp, i, i + size_t(len)});
    i += size_t(len);
  }
  return out;
}

std::string encode_utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace saepipe
