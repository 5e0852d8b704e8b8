// Matching as tokenizers' AddedVocabulary::find_matches (see added_tokens.hpp).
#include "pipeline/model/added_tokens.hpp"

#include <unicode/uchar.h>

#include <algorithm>

#include "pipeline/core/utf8.hpp"

namespace saepipe {

namespace {

// Rust regex's \w (Unicode): Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
bool is_word_char(char32_t c) {
  if (u_hasBinaryProperty(UChar32(c), UCHAR_ALPHABETIC) || u_hasBinaryProperty(UChar32(c), UCHAR_JOIN_CONTROL)) return true;
  const int8_t t = u_charType(UChar32(c));
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}
bool is_space(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_WHITE_SPACE); }

// The code point ending just before byte `end` / starting at byte `begin` (s is valid UTF-8).
char32_t cp_before(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return decode_utf8(s.substr(b, end - b), "text")[0].cp;
}
size_t cp_len(std::string_view s, size_t begin) {
  const unsigned char c = static_cast<unsigned char>(s[begin]);
  const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  return std::min(n, s.size() - begin);
}
char32_t cp_at(std::string_view s, size_t begin) { return decode_utf8(s.substr(begin, cp_len(s, begin)), "text")[0].cp; }

}  // namespace

std::vector<AddedSplit> split_added_tokens(std::string_view s, const std::vector<AddedToken>& tokens, bool normalized) {
  std::vector<AddedSplit> out;
  size_t done = 0, pos = 0;  // done: end of the last match (start_offset in tokenizers)
  while (pos < s.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& t : tokens)
      if (t.normalized == normalized && !t.content.empty() && (!hit || t.content.size() > hit->content.size()) &&
          s.compare(pos, t.content.size(), t.content) == 0)
        hit = &t;
    if (!hit) {
      pos += cp_len(s, pos);
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    pos = stop;  // matches never overlap, even one refused below
    if (hit->single_word && ((start > 0 && is_word_char(cp_before(s, start))) || (stop < s.size() && is_word_char(cp_at(s, stop)))))
      continue;
    if (hit->lstrip) {
      while (start > done && is_space(cp_before(s, start))) {
        size_t b = start - 1;
        while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
        start = b;
      }
    }
    if (hit->rstrip)
      while (stop < s.size() && is_space(cp_at(s, stop))) stop += cp_len(s, stop);
    if (done < start) out.push_back({-1, std::string(s.substr(done, start - done)), done});
    out.push_back({hit->id, "", start});
    done = pos = stop;
  }
  if (done < s.size()) out.push_back({-1, std::string(s.substr(done)), done});
  return out;
}

}  // namespace saepipe
