#include "pipeline/model/bpe_tokenizer.hpp"

#include <unicode/uchar.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/utf8.hpp"

namespace saepipe {

namespace {

bool is_letter(char32_t c) {  // \p{L}
  const int8_t t = u_charType(UChar32(c));
  return t == U_UPPERCASE_LETTER || t == U_LOWERCASE_LETTER || t == U_TITLECASE_LETTER || t == U_MODIFIER_LETTER ||
         t == U_OTHER_LETTER;
}
bool is_number(char32_t c) {  // \p{N}
  const int8_t t = u_charType(UChar32(c));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}
bool is_space(char32_t c) { return u_isUWhiteSpace(UChar32(c)); }  // \s: the White_Space property
bool is_other(char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }

// Length (in code points) of the match of GPT-2's pattern at position i; alternatives are
// tried in the pattern's order, as a backtracking regex engine does.
size_t match_at(const std::vector<CodePoint>& cps, size_t i) {
  const size_t n = cps.size();
  auto at = [&](size_t k) -> char32_t { return k < n ? cps[k].cp : 0; };
  // 's|'t|'re|'ve|'m|'ll|'d
  if (at(i) == U'\'' && i + 1 < n) {
    const char32_t a = at(i + 1), b = at(i + 2);
    if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
    if (i + 2 < n && ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l'))) return 3;
  }
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
  for (bool (*cls)(char32_t) : {is_letter, is_number, is_other}) {
    size_t j = i;
    if (at(j) == U' ' && j + 1 < n && cls(at(j + 1))) ++j;
    if (j < n && cls(at(j))) {
      while (j < n && cls(at(j))) ++j;
      return j - i;
    }
  }
  // \s+(?!\S) then \s+: a whitespace run; when a non-space follows it, the run's last character
  // is left to start the next piece (unless the run is a single character).
  size_t j = i;
  while (j < n && is_space(at(j))) ++j;
  if (j > i) {
    if (j == n || j - i == 1) return j - i;
    return j - i - 1;
  }
  return 1;  // not reached: every character is a letter, number, space or other
}

}  // namespace

std::vector<char32_t> gpt2_byte_alphabet() {
  // Printable Latin-1 bytes stand for themselves, the others for 256, 257, ... in byte order.
  std::vector<char32_t> cp(256);
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp[size_t(b)] = printable ? char32_t(b) : next++;
  }
  return cp;
}

std::vector<std::string> gpt2_pretokenize(std::string_view text, const std::string& where) {
  const std::vector<CodePoint> cps = decode_utf8(text, where);
  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < cps.size()) {
    const size_t len = match_at(cps, i);
    pieces.emplace_back(text.substr(cps[i].begin, cps[i + len - 1].end - cps[i].begin));
    i += len;
  }
  return pieces;
}

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string vocab_path = (fs::path(model_dir) / "vocab.json").string();
  const std::string merges_path = (fs::path(model_dir) / "merges.txt").string();
  for (const std::string& p : {vocab_path, merges_path})
    if (!path_exists(p)) user_error(p + ": not found (text and JSONL token inputs need the model's vocab.json and merges.txt)");
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(read_file(vocab_path));
  } catch (const nlohmann::json::exception& e) {
    user_error(vocab_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!v.is_object() || v.empty()) user_error(vocab_path + ": must be a non-empty object {token: id}");
  for (auto& [tok, id] : v.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= int64_t(v.size()) * 4 + 1024)
      user_error(vocab_path + ": token " + nlohmann::json(tok).dump() + " has a bad id " + id.dump());
    const auto k = id.get<int32_t>();
    if (size_t(k) >= id_to_token_.size()) id_to_token_.resize(size_t(k) + 1);
    id_to_token_[size_t(k)] = tok;
    vocab_[tok] = k;
  }
  std::ifstream in(merges_path);
  if (!in) user_error(merges_path + ": cannot open for reading");
  std::string line;
  int32_t rank = 0;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
      user_error(merges_path + ":" + std::to_string(line_no) + ": expected two symbols separated by one space");
    merge_rank_.emplace(line, rank++);  // the first occurrence of a pair keeps its rank
  }
  const std::vector<char32_t> alphabet = gpt2_byte_alphabet();
  byte_symbol_.resize(256);
  for (int b = 0; b < 256; ++b) byte_symbol_[size_t(b)] = encode_utf8(alphabet[size_t(b)]);
}

int32_t Gpt2Tokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<std::string> Gpt2Tokenizer::bpe(const std::vector<std::string>& symbols) const {
  std::vector<std::string> w = symbols;
  while (w.size() > 1) {
    int32_t best = std::numeric_limits<int32_t>::max();
    std::string best_pair;
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      auto it = merge_rank_.find(w[i] + " " + w[i + 1]);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        best_pair = it->first;
      }
    }
    if (best_pair.empty()) break;
    const size_t sp = best_pair.find(' ');
    const std::string a = best_pair.substr(0, sp), b = best_pair.substr(sp + 1);
    std::vector<std::string> next;
    for (size_t i = 0; i < w.size();) {  // merge every occurrence, left to right
      if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
        next.push_back(a + b);
        i += 2;
      } else {
        next.push_back(w[i++]);
      }
    }
    w = std::move(next);
  }
  return w;
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text, const std::string& where) const {
  std::vector<int32_t> ids;
  std::unordered_map<std::string, std::vector<int32_t>> cache;  // piece -> ids, for this call
  for (const std::string& piece : gpt2_pretokenize(text, where)) {
    auto hit = cache.find(piece);
    if (hit == cache.end()) {
      std::vector<std::string> symbols;
      for (unsigned char c : piece) symbols.push_back(byte_symbol_[c]);
      std::vector<int32_t> piece_ids;
      for (const std::string& s : bpe(symbols)) {
        const int32_t id = token_id(s);
        if (id < 0) user_error(where + ": the vocabulary lacks the BPE symbol " + nlohmann::json(s).dump() +
                               " (vocab.json and merges.txt do not match)");
        piece_ids.push_back(id);
      }
      hit = cache.emplace(piece, std::move(piece_ids)).first;
    }
    ids.insert(ids.end(), hit->second.begin(), hit->second.end());
  }
  return ids;
}

}  // namespace saepipe
