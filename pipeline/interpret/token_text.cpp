#include "pipeline/interpret/token_text.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/interpret/html_text.hpp"

namespace saepipe {

namespace {

// Decodes one UTF-8 code point at s[i] (s is valid UTF-8: nlohmann checked it); advances i.
char32_t next_code_point(const std::string& s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len && i + size_t(k) < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3F);
  i += size_t(len);
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string id_text(int32_t id) { return "\xE2\x9F\xA8" + std::to_string(id) + "\xE2\x9F\xA9"; }  // ⟨id⟩

}  // namespace

std::vector<char32_t> gpt2_byte_alphabet() {
  std::vector<char32_t> cp(256);
  std::vector<bool> printable(256, false);
  for (int b = '!'; b <= '~'; ++b) printable[size_t(b)] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[size_t(b)] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[size_t(b)] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) cp[size_t(b)] = printable[size_t(b)] ? char32_t(b) : next++;
  return cp;
}

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
    for (size_t i = 0; i < token.size();) {
      const char32_t cp = next_code_point(token, i);
      auto it = byte_of.find(cp);
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
    else if (c < 0x20) append_utf8(out, char32_t(0x2400 + c));
    else if (c == 0x7F) out += "\xE2\x90\xA1";  // ␡
    else out += ch;
  }
  return out;
}

}  // namespace saepipe
