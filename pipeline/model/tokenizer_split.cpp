// tokenizers' Split step (see tokenizer_split.hpp).
#include "pipeline/model/tokenizer_split.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/core/utf8.hpp"

namespace saepipe {

SplitPattern parse_split_pattern(const nlohmann::json& p, const std::string& where) {
  SplitPattern out;
  if (!p.is_object()) user_error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
  if (p.contains("String") && p["String"].is_string()) {
    out.literal = p["String"].get<std::string>();
    if (out.literal.empty()) user_error(where + ": empty pattern");
    return out;
  }
  if (!p.contains("Regex") || !p["Regex"].is_string()) user_error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
  UErrorCode status = U_ZERO_ERROR;
  UParseError pe;
  out.regex.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(p["Regex"].get<std::string>()), 0, pe, status));
  if (U_FAILURE(status)) user_error(where + ": regex " + p["Regex"].dump() + " does not compile (" + u_errorName(status) + ")");
  return out;
}

std::vector<std::pair<size_t, size_t>> find_all(const SplitPattern& p, const std::string& s) {
  std::vector<std::pair<size_t, size_t>> m;
  if (p.regex) {
    icu::UnicodeString u;
    std::vector<size_t> byte_at;  // UTF-16 index -> byte offset
    for (const CodePoint& c : decode_utf8(s, "text")) {
      const int32_t before = u.length();
      u.append(UChar32(c.cp));
      for (int32_t k = before; k < u.length(); ++k) byte_at.push_back(c.begin);
    }
    byte_at.push_back(s.size());
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> rm(p.regex->matcher(u, status));
    if (U_SUCCESS(status)) rm->setTimeLimit(200, status);  // a pathological pattern fails, never hangs
    while (U_SUCCESS(status) && rm->find(status)) {
      const int32_t a = rm->start(status), b = rm->end(status);
      if (b > a) m.emplace_back(byte_at[size_t(a)], byte_at[size_t(b)]);
    }
    if (U_FAILURE(status)) user_error(std::string("tokenizer.json: a Split regex failed (") + u_errorName(status) + ")");
  } else {
    for (size_t pos = s.find(p.literal); pos != std::string::npos; pos = s.find(p.literal, pos + p.literal.size()))
      m.emplace_back(pos, pos + p.literal.size());
  }
  return m;
}

std::vector<std::string> split_by(const std::string& s, const std::vector<std::pair<size_t, size_t>>& m, SplitBehavior b) {
  std::vector<std::string> out;
  size_t last = 0;
  std::string carry;  // MergedWithNext: a match waiting for the text after it
  for (auto [a, e] : m) {
    std::string gap = s.substr(last, a - last), match = s.substr(a, e - a);
    switch (b) {
      case SplitBehavior::Isolated:
        if (!gap.empty()) out.push_back(gap);
        out.push_back(match);
        break;
      case SplitBehavior::Removed:
        if (!gap.empty()) out.push_back(gap);
        break;
      case SplitBehavior::MergedWithPrevious:
        out.push_back(gap + match);
        break;
      case SplitBehavior::MergedWithNext:
        if (!(carry + gap).empty()) out.push_back(carry + gap);
        carry = match;
        break;
    }
    last = e;
  }
  const std::string tail = carry + s.substr(last);
  if (!tail.empty()) out.push_back(tail);
  return out;
}

}  // namespace saepipe
