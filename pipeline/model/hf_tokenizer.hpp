// Hugging Face tokenizer.json BPE tokenizers of the two kinds in use, following the `tokenizers`
// library's pipeline: added tokens split out first, then per remaining segment the normalizer,
// the pre-tokenizer and the BPE model; decoding through the decoder chain.
//   byte-level BPE (Llama 3, Qwen, GPT-NeoX): ByteLevel pre-tokenizer (GPT-2's regex or a Split
//     with the model's own regex before it), NFC;
//   SentencePiece-style BPE (Llama 2, Mistral, Gemma): "▁" for spaces (Prepend + Replace
//     normalizers, or the Metaspace pre-tokenizer), byte fallback to <0xNN> tokens, fused unk.
// Supported pieces: normalizers NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace (string
// pattern), Sequence; pre-tokenizers ByteLevel, Split (regex or string; Isolated, Removed,
// MergedWithPrevious, MergedWithNext), Metaspace, Digits, Sequence; model BPE (merges as
// "a b" strings or pairs, ignore_merges, byte_fallback, unk_token, fuse_unk); decoders
// ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence. Anything else is a user
// error naming it. Added tokens as tokenizers splits them (added_tokens.hpp: normalized or raw,
// single_word, lstrip / rstrip).
// Regexes run on ICU (\p{L}, (?i:...), look-ahead as in the Oniguruma patterns of tokenizer.json).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace saepipe {

class HfTokenizer {
 public:
  // Parses tokenizer.json text; `where` names it in errors (user error for malformed or
  // unsupported content).
  HfTokenizer(std::string_view json_text, const std::string& where);
  ~HfTokenizer();
  HfTokenizer(const HfTokenizer&) = delete;
  HfTokenizer& operator=(const HfTokenizer&) = delete;

  // Token ids of UTF-8 text, without the post-processor's special tokens (a harvest adds the
  // model's BOS itself). User error naming `where` for invalid UTF-8.
  std::vector<int32_t> encode(std::string_view text, const std::string& where = "text") const;
  // Text of ids, as tokenizers' decode(ids, skip_special_tokens=False).
  std::string decode(const std::vector<int32_t>& ids) const;
  // The bytes one token stands for in running text (the interpret site's token text): byte-level
  // tokens through the byte alphabet, "▁" as a space, <0xNN> as that byte. Empty outside the vocabulary.
  std::string token_bytes(int32_t id) const;
  int64_t vocab_size() const;  // one past the largest id

  struct Impl;

 private:
  void parse(std::string_view text, const std::string& where);
  std::unique_ptr<Impl> impl_;
};

// model_dir/tokenizer.json, or nullptr when there is none; for a GGUF file (model_dir ending in
// .gguf), the tokenizer it carries (gguf_tokenizer.hpp).
std::unique_ptr<HfTokenizer> open_hf_tokenizer(const std::string& model_dir);

}  // namespace saepipe
