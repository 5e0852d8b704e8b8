#include "pipeline/interpret/token_text.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/utf8.hpp"
#include "pipeline/interpret/html_text.hpp"
#include "pipeline/model/bpe_tokenizer.hpp"

namespace saepipe {

namespace {

std::string id_text(int32_t id) { return "\xE2\x9F\xA8" + std::to_string(id) + "\xE2\x9F\xA9"; }  // ⟨id⟩

}  // namespace

TokenText::TokenText(std::vector<std::string> bytes_by_id, std::string source)
    : bytes_(std::move(bytes_by_id)), source_(std::move(source)) {}

TokenText TokenText::from_vocab_json(const std::string& vocab_path) {
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(vocab_path));
  } catch (const nlohmann::json::exception& e) {
    user_error(vocab_path + ": not valid JSON: " + e.what());
  }
  if (!vocab.is_object() || vocab.empty()) user_error(vocab_path + ": expected a JSON object {\"token\": id, ...}");
  std::unordered_map<char32_t, unsigned char> byte_of;
  const std::vector<char32_t> alphabet = gpt2_byte_alphabet();
  for (int b = 0; b < 256; ++b) byte_of[alphabet[size_t(b)]] = static_cast<unsigned char>(b);
  int64_t max_id = -1;
  for (auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (int64_t(1) << 24))
      user_error(vocab_path + ": token \"" + make_valid_utf8(token) + "\": id is not an integer in [0, 2^24]");
    max_id = std::max(max_id, id.get<int64_t>());
  }
  std::vector<std::string> bytes(size_t(max_id + 1));
  std::vector<bool> seen(bytes.size(), false);
  for (auto& [token, id] : vocab.items()) {
    const auto k = size_t(id.get<int64_t>());
    if (seen[k]) user_error(vocab_path + ": id " + std::to_string(k) + " is given to two tokens");
    seen[k] = true;
    std::string b;
    for (const CodePoint& c : decode_utf8(token, vocab_path)) {
      auto it = byte_of.find(c.cp);
      if (it == byte_of.end()) {
        // Added special tokens (e.g. "<|endoftext|>") are plain ASCII in the alphabet; a code
        // point outside it is not a GPT-2 byte-level vocabulary.
        user_error(vocab_path + ": token \"" + make_valid_utf8(token) +
                   "\" holds a character outside GPT-2's byte alphabet (not a byte-level BPE vocabulary)");
      }
      b += char(it->second);
    }
    bytes[k] = std::move(b);
  }
  return TokenText(std::move(bytes), vocab_path);
}

const std::string& TokenText::bytes(int32_t id) const {
  static const std::string empty;
  return id >= 0 && int64_t(id) < vocab_size() ? bytes_[size_t(id)] : empty;
}

std::string TokenText::text(int32_t id) const {
  if (id < 0 || int64_t(id) >= vocab_size()) return id_text(id);
  return make_valid_utf8(bytes_[size_t(id)]);
}

std::string TokenText::display(int32_t id) const { return visible_controls(text(id)); }

std::string visible_controls(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') out += "\xE2\x86\xB5";       // ↵
    else if (c == '\t') out += "\xE2\x87\xA5";  // ⇥
    else if (c < 0x20) out += encode_utf8(char32_t(0x2400 + c));
    else if (c == 0x7F) out += "\xE2\x90\xA1";  // ␡
    else out += ch;
  }
  return out;
}

}  // namespace saepipe
