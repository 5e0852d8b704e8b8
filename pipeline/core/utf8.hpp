// UTF-8 code points, for the tokenizer and the interpret site's token text.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace saepipe {

// A decoded code point and where its UTF-8 bytes lie.
struct CodePoint {
  char32_t cp;
  size_t begin, end;
};

// The code points of s; user error naming `where` and the byte offset for invalid UTF-8
// (overlong forms, surrogates and values past U+10FFFF included).
std::vector<CodePoint> decode_utf8(std::string_view s, const std::string& where);
std::string encode_utf8(char32_t cp);

}  // namespace saepipe
