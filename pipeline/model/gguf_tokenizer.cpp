#include "pipeline/model/gguf_tokenizer.hpp"

#include <set>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/utf8.hpp"
#include "pipeline/model/bpe_tokenizer.hpp"
#include "pipeline/model/gguf_llama.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

// The split patterns of llama.cpp's pre-tokenizer types (llama-vocab.cpp), as tokenizer.json
// writes them for the same models.
constexpr const char* kLlama3Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

json regex_then_bytes(const char* pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
            byte_level(false)}}};
}

json pre_tokenizer(const GgufFile& f, const std::string& pre) {
  if (pre.empty() || pre == "default" || pre == "gpt2") return byte_level(true);
  if (pre == "smollm")
    return {{"type", "Sequence"},
            {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return regex_then_bytes(kLlama3Split);
  if (pre == "qwen2") return regex_then_bytes(kQwen2Split);
  user_error(f.path() + ": tokenizer.ggml.pre '" + pre +
             "' is not supported (supported: gpt2, default, smollm, llama-bpe, llama3, qwen2)");
}

}  // namespace

json gguf_tokenizer_json(const GgufFile& f) {
  const GgufTokenizerData t = read_gguf_tokenizer(f);
  if (t.model != "gpt2")
    user_error(f.path() + ": tokenizer.ggml.model '" + t.model +
               "' is not supported for GGUF files (supported: gpt2, byte-level BPE)");
  if (t.merges.empty()) user_error(f.path() + ": tokenizer.ggml.merges is missing or empty (byte-level BPE needs it)");
  for (const std::string& m : t.merges) decode_utf8(m, f.path() + ": tokenizer.ggml.merges");

  std::set<char32_t> alphabet;
  const std::vector<char32_t> bytes = gpt2_byte_alphabet();
  for (char32_t c : bytes) alphabet.insert(c);
  const auto in_alphabet = [&](const std::string& s) {
    for (const CodePoint& c : decode_utf8(s, f.path() + ": tokenizer.ggml.tokens"))
      if (!alphabet.count(c.cp)) return false;
    return true;
  };

  json vocab = json::object(), added = json::array();
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const std::string& tok = t.tokens[id];
    const bool spelled = in_alphabet(tok);
    std::string key = tok;
    if (!spelled) {  // raw text: spell its bytes in the alphabet, as the vocabulary's other tokens are
      key.clear();
      for (unsigned char b : tok) key += encode_utf8(bytes[b]);
    }
    if (vocab.contains(key)) user_error(f.path() + ": tokenizer.ggml.tokens holds '" + tok + "' twice");
    vocab[key] = int64_t(id);
    const auto type = GgufTokenType(t.token_types[id]);
    // A control token outside the alphabet is a mislabel llama.cpp's converters make; like
    // transformers, it is not matched in text.
    if ((type == GgufTokenType::Control && spelled) || type == GgufTokenType::UserDefined)
      added.push_back({{"id", int64_t(id)}, {"content", tok}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", type == GgufTokenType::Control}});
  }
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer(f, t.pre)},
          {"decoder", byte_level(true)},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
            {"vocab", vocab}, {"merges", t.merges}}}};
}

std::string gguf_tokenizer_unsupported(const GgufFile& f) {
  try {
    gguf_tokenizer_json(f);
    return "";
  } catch (const SaeError& e) {
    if (e.kind() != ErrorKind::User) throw;
    return e.what();
  }
}

std::unique_ptr<HfTokenizer> open_gguf_tokenizer(const GgufFile& f) {
  return std::make_unique<HfTokenizer>(gguf_tokenizer_json(f).dump(), f.path() + " (tokenizer.ggml.*)");
}

}  // namespace saepipe
