// GPT-2's byte-level BPE tokenizer (vocab.json + merges.txt of a Hugging Face model directory).
// Text is split by GPT-2's pre-tokenization pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (matched by hand: std::regex has no \p{L}/\p{N}; Unicode categories come from ICU), each piece's
// UTF-8 bytes are mapped to printable characters (bytes_to_unicode) and merged by rank.
// Special tokens such as <|endoftext|> inside the text are encoded as plain text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace saepipe {

// GPT-2's bytes_to_unicode: the code point standing for each byte in vocab.json and merges.txt.
std::vector<char32_t> gpt2_byte_alphabet();

// GPT-2's pre-tokenization of UTF-8 text; user error (naming `where` and the byte offset) for
// invalid UTF-8.
std::vector<std::string> gpt2_pretokenize(std::string_view text, const std::string& where = "text");

class Gpt2Tokenizer {
 public:
  // Reads model_dir/vocab.json and model_dir/merges.txt; user error naming the file when one is
  // missing or malformed.
  explicit Gpt2Tokenizer(const std::string& model_dir);

  // `where` names the input in error messages (invalid UTF-8, a piece the vocabulary lacks).
  std::vector<int32_t> encode(std::string_view text, const std::string& where = "text") const;
  int64_t vocab_size() const { return int64_t(id_to_token_.size()); }
  // The token id of a vocabulary entry, or -1.
  int32_t token_id(const std::string& token) const;

 private:
  std::vector<std::string> bpe(const std::vector<std::string>& symbols) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
  std::vector<std::string> byte_symbol_;                 // [256] UTF-8 of bytes_to_unicode(b)
};

}  // namespace saepipe
