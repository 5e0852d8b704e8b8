// tokenizers' Split step: a pattern ({"String": s} or {"Regex": r}), its matches in a text and
// the four ways of cutting the text at them. Used by the Split and Metaspace pre-tokenizers.
#pragma once

#include <unicode/regex.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace saepipe {

struct SplitPattern {
  std::string literal;
  std::unique_ptr<icu::RegexPattern> regex;
};

// Exit 2 naming `where` when the object is neither form or the regex does not compile.
SplitPattern parse_split_pattern(const nlohmann::json& p, const std::string& where);

// Byte ranges [begin, end) of the pattern's matches in s (non-empty matches only).
std::vector<std::pair<size_t, size_t>> find_all(const SplitPattern& p, const std::string& s);

enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext };

std::vector<std::string> split_by(const std::string& s, const std::vector<std::pair<size_t, size_t>>& m,
                                  SplitBehavior b);

}  // namespace saepipe
