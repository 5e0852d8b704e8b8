// Token ids as text for the interpret stage: a GPT-2 byte-level vocabulary (vocab.json of the
// model directory) maps each id to its bytes; without one, ids are shown as ⟨123⟩.
// Single tokens can hold part of a multi-byte character: their text is made valid UTF-8
// (U+FFFD for the partial bytes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace saepipe {

class TokenText {
 public:
  TokenText() = default;  // no vocabulary: every id is shown as ⟨id⟩
  // Reads model_dir/vocab.json ({"token": id}, GPT-2's byte-to-unicode alphabet). User error
  // naming the file when it is not valid JSON, an id is negative or repeated, or a token holds
  // a character outside the alphabet. The file must exist (see find_vocab).
  static TokenText from_vocab_json(const std::string& vocab_path);
  // Builds from id -> bytes directly (tests, other tokenizers).
  explicit TokenText(std::vector<std::string> bytes_by_id, std::string source = "");

  bool has_vocab() const { return !bytes_.empty(); }
  const std::string& source() const { return source_; }  // the vocab.json read, or ""
  int64_t vocab_size() const { return int64_t(bytes_.size()); }
  // The token's bytes (raw, possibly partial UTF-8); "" for ids outside the vocabulary.
  const std::string& bytes(int32_t id) const;
  // The token as valid UTF-8: its text with a vocabulary (⟨id⟩ for an id outside it), else ⟨id⟩.
  std::string text(int32_t id) const;
  // text(id) for display in a line of context: newline as ↵, tab as ⇥, other control
  // characters as their Unicode control pictures (␀…␟, ␡).
  std::string display(int32_t id) const;

 private:
  std::vector<std::string> bytes_;
  std::string source_;
};

// Control characters made visible (see TokenText::display); `s` must be valid UTF-8.
std::string visible_controls(const std::string& s);

}  // namespace saepipe
