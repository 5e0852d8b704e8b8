// The added tokens of a tokenizer.json ("added_tokens"), split out of a text before the model
// sees it, as the `tokenizers` library's AddedVocabulary does:
//   - normalized = false (special tokens' default): matched in the raw text;
//     normalized = true: matched, after the normalizer, in the normalized text of what the raw
//     tokens left, against the token's content passed through the same normalizer;
//   - leftmost-longest, non-overlapping matches;
//   - single_word: a match with a word character (regex \w) just before or after it is no match;
//   - lstrip / rstrip: the whitespace (regex \s) before / after a match goes with the token;
//   - special only says whether decode(skip_special_tokens=True) drops the token; saepipe never
//     skips them, so it changes nothing here.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace saepipe {

struct AddedToken {
  std::string content;  // as matched: the content, or the normalized content when normalized
  int32_t id = -1;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// A piece of a text: an added token (id >= 0) or text for the normalizer / model, with its
// byte offset in the string it came from.
struct AddedSplit {
  int32_t id = -1;
  std::string text;
  size_t offset = 0;
};

// The splits of s by the tokens whose `normalized` equals the one given (tokens longest first
// or in any order: the longest match at the leftmost position wins).
std::vector<AddedSplit> split_added_tokens(std::string_view s, const std::vector<AddedToken>& tokens, bool normalized);

}  // namespace saepipe
