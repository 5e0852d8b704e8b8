// tokenizer.json -> the steps of tokenizers' pipeline, each a small struct run in order.
#include "pipeline/model/hf_tokenizer.hpp"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <queue>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/utf8.hpp"
#include "pipeline/model/added_tokens.hpp"
#include "pipeline/model/bpe_tokenizer.hpp"
#include "pipeline/model/gguf_model.hpp"
#include "pipeline/model/gguf_tokenizer.hpp"
#include "pipeline/model/tokenizer_split.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

std::string str(const json& j, const char* key, const std::string& where, const std::string& fallback = "") {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_string()) user_error(where + ": \"" + key + "\" must be a string");
  return j[key].get<std::string>();
}

bool flag(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// Bytes as text, invalid sequences replaced as Rust's from_utf8_lossy does (tokenizers'
// ByteLevel decoder): one U+FFFD for each maximal prefix of a valid sequence, and for each
// byte that cannot start one.
std::string lossy_utf8(const std::string& b) {
  std::string out;
  size_t i = 0;
  const size_t n = b.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(b[k]); };
  while (i < n) {
    const unsigned char c = at(i);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    size_t k = 1;
    while (k < len && i + k < n && at(i + k) >= (k == 1 ? lo : 0x80) && at(i + k) <= (k == 1 ? hi : 0xBF)) ++k;
    if (k == len) out.append(b, i, len);
    else out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the input (Metaspace's "first")
};

}  // namespace

struct HfTokenizer::Impl {
  struct Norm {
    std::string type, a, b;
  };
  struct PreTok {
    std::string type;
    SplitPattern pattern;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool add_prefix_space = false, use_regex = true, split = true, individual_digits = false;
    std::string replacement = "\xE2\x96\x81", prepend_scheme = "always";
  };
  struct Dec {
    std::string type, a, b;
    int64_t start = 0, stop = 0;
    std::string prepend_scheme = "always";
  };

  std::string where;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a, b) -> (rank, merged id)
  std::vector<AddedToken> added;
  std::vector<Norm> norms;
  std::vector<PreTok> pretoks;
  std::vector<Dec> decs;
  bool ignore_merges = false, byte_fallback = false, fuse_unk = false, byte_level = false;
  int32_t unk = -1;
  std::vector<std::string> byte_char;              // [256]: the byte alphabet (UTF-8)
  std::unordered_map<char32_t, unsigned char> char_byte;

  void parse_normalizer(const json& n);
  void parse_pretokenizer(const json& p);
  void parse_decoder(const json& d);
  std::string normalize(std::string s) const;
  std::vector<Piece> pretokenize(Piece p) const;
  void bpe(const std::string& word, std::vector<int32_t>& out) const;
};

void HfTokenizer::Impl::parse_normalizer(const json& n) {
  if (n.is_null()) return;
  const std::string t = str(n, "type", where + ": normalizer");
  if (t == "Sequence") {
    for (const json& x : n.value("normalizers", json::array())) parse_normalizer(x);
  } else if (t == "NFC" || t == "NFD" || t == "NFKC" || t == "NFKD" || t == "Lowercase") {
    norms.push_back({t, "", ""});
  } else if (t == "Prepend") {
    norms.push_back({t, str(n, "prepend", where), ""});
  } else if (t == "Replace") {
    const json p = n.value("pattern", json());
    if (!p.is_object() || !p.contains("String") || !p["String"].is_string())
      user_error(where + ": normalizer Replace needs a string pattern (regex patterns are not supported)");
    norms.push_back({t, p["String"].get<std::string>(), str(n, "content", where)});
  } else {
    user_error(where + ": normalizer \"" + t + "\" is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)");
  }
}

void HfTokenizer::Impl::parse_pretokenizer(const json& p) {
  if (p.is_null()) return;
  const std::string t = str(p, "type", where + ": pre_tokenizer");
  PreTok s;
  s.type = t;
  if (t == "Sequence") {
    for (const json& x : p.value("pretokenizers", json::array())) parse_pretokenizer(x);
    return;
  } else if (t == "ByteLevel") {
    s.add_prefix_space = flag(p, "add_prefix_space", false);
    s.use_regex = flag(p, "use_regex", true);
    byte_level = true;
  } else if (t == "Split") {
    s.pattern = parse_split_pattern(p.value("pattern", json()), where + ": Split");
    const std::string b = str(p, "behavior", where, "Isolated");
    if (b == "Isolated") s.behavior = SplitBehavior::Isolated;
    else if (b == "Removed") s.behavior = SplitBehavior::Removed;
    else if (b == "MergedWithPrevious") s.behavior = SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext") s.behavior = SplitBehavior::MergedWithNext;
    else user_error(where + ": Split behavior \"" + b + "\" is not supported");
    if (flag(p, "invert", false)) user_error(where + ": Split with invert = true is not supported");
  } else if (t == "Metaspace") {
    s.replacement = str(p, "replacement", where, "\xE2\x96\x81");
    s.prepend_scheme = str(p, "prepend_scheme", where, flag(p, "add_prefix_space", true) ? "always" : "never");
    s.split = flag(p, "split", true);
  } else if (t == "Digits") {
    s.individual_digits = flag(p, "individual_digits", false);
  } else {
    user_error(where + ": pre_tokenizer \"" + t + "\" is not supported (ByteLevel, Split, Metaspace, Digits, Sequence)");
  }
  pretoks.push_back(std::move(s));
}

void HfTokenizer::Impl::parse_decoder(const json& d) {
  if (d.is_null()) return;
  const std::string t = str(d, "type", where + ": decoder");
  if (t == "Sequence") {
    for (const json& x : d.value("decoders", json::array())) parse_decoder(x);
    return;
  }
  Dec s;
  s.type = t;
  if (t == "Replace") {
    const json p = d.value("pattern", json());
    if (!p.is_object() || !p.contains("String") || !p["String"].is_string())
      user_error(where + ": decoder Replace needs a string pattern (regex patterns are not supported)");
    s.a = p["String"].get<std::string>(), s.b = str(d, "content", where);
  } else if (t == "Strip") {
    s.a = str(d, "content", where, " ");
    for (auto [key, field] : {std::pair{"start", &s.start}, std::pair{"stop", &s.stop}})
      if (d.contains(key)) {
        if (!d[key].is_number_unsigned()) user_error(where + ": decoder Strip \"" + key + "\" must be a count");
        *field = std::min<int64_t>(d[key].get<int64_t>(), 1 << 20);
      }
  } else if (t == "Metaspace") {
    s.a = str(d, "replacement", where, "\xE2\x96\x81");
    s.prepend_scheme = str(d, "prepend_scheme", where, flag(d, "add_prefix_space", true) ? "always" : "never");
  } else if (t == "ByteLevel") {
    byte_level = true;
  } else if (t != "ByteFallback" && t != "Fuse") {
    user_error(where + ": decoder \"" + t + "\" is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
  }
  decs.push_back(s);
}

std::string HfTokenizer::Impl::normalize(std::string s) const {
  for (const Norm& n : norms) {
    if (n.type == "Prepend") {
      if (!s.empty()) s = n.a + s;
    } else if (n.type == "Replace") {
      s = replace_all(std::move(s), n.a, n.b);
    } else {
      UErrorCode status = U_ZERO_ERROR;
      icu::UnicodeString u = icu::UnicodeString::fromUTF8(s), r;
      if (n.type == "Lowercase") {
        r = u.toLower(icu::Locale::getRoot());
      } else {
        const icu::Normalizer2* nz = n.type == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                                     : n.type == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                     : n.type == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                                        : icu::Normalizer2::getNFKDInstance(status);
        if (U_SUCCESS(status)) r = nz->normalize(u, status);
        if (U_FAILURE(status)) internal_error(std::string("ICU normalizer: ") + u_errorName(status));
      }
      s.clear();
      r.toUTF8String(s);
    }
  }
  return s;
}

std::vector<Piece> HfTokenizer::Impl::pretokenize(Piece first) const {
  std::vector<Piece> pieces = {std::move(first)};
  for (const PreTok& s : pretoks) {
    std::vector<Piece> next;
    for (Piece& p : pieces) {
      std::vector<std::string> parts;
      if (s.type == "Split") {
        parts = split_by(p.text, find_all(s.pattern, p.text), s.behavior);
      } else if (s.type == "Digits") {
        // tokenizers splits on char::is_numeric: every number (Nd, Nl, No: "7", "Ⅻ", "½", "²"), not
        // only ASCII digits; runs of them stay together unless individual_digits.
        std::vector<std::pair<size_t, size_t>> m;
        for (const CodePoint& c : decode_utf8(p.text, where)) {
          if (!(U_GET_GC_MASK(UChar32(c.cp)) & U_GC_N_MASK)) continue;
          if (!s.individual_digits && !m.empty() && m.back().second == c.begin) m.back().second = c.end;
          else m.emplace_back(c.begin, c.end);
        }
        parts = split_by(p.text, m, SplitBehavior::Isolated);
      } else if (s.type == "Metaspace") {
        std::string t = replace_all(p.text, " ", s.replacement);
        const bool prepend = s.prepend_scheme == "always" || (s.prepend_scheme == "first" && p.at_start);
        if (prepend && t.rfind(s.replacement, 0) != 0) t = s.replacement + t;
        if (s.split) {
          SplitPattern lit;
          lit.literal = s.replacement;
          parts = split_by(t, find_all(lit, t), SplitBehavior::MergedWithNext);
        } else {
          parts = {t};
        }
      } else {  // ByteLevel
        std::string t = p.text;
        if (s.add_prefix_space && t.rfind(' ', 0) != 0) t = " " + t;
        std::vector<std::string> raw = s.use_regex ? gpt2_pretokenize(t, where) : std::vector<std::string>{t};
        for (const std::string& r : raw) {
          std::string mapped;
          for (unsigned char c : r) mapped += byte_char[c];
          parts.push_back(std::move(mapped));
        }
      }
      for (size_t k = 0; k < parts.size(); ++k)
        if (!parts[k].empty()) next.push_back({std::move(parts[k]), p.at_start && k == 0});
    }
    pieces = std::move(next);
  }
  return pieces;
}

// BPE of one word as tokenizers does it: symbols in a linked list, the lowest-ranked adjacent
// pair merged first (leftmost among equals), stale queue entries skipped.
void HfTokenizer::Impl::bpe(const std::string& word, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    auto it = vocab.find(word);
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Sym {
    int32_t id;
    int64_t prev, next;
  };
  std::vector<Sym> syms;
  for (const CodePoint& c : decode_utf8(word, where)) {
    const std::string ch = word.substr(c.begin, c.end - c.begin);
    auto it = vocab.find(ch);
    if (it != vocab.end()) {
      syms.push_back({it->second, 0, 0});
      continue;
    }
    bool done = false;
    if (byte_fallback) {
      std::vector<int32_t> bytes;
      for (unsigned char b : ch) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        auto bt = vocab.find(name);
        if (bt == vocab.end()) break;
        bytes.push_back(bt->second);
      }
      if (bytes.size() == ch.size()) {
        for (int32_t b : bytes) syms.push_back({b, 0, 0});
        done = true;
      }
    }
    if (done) continue;
    if (unk < 0) user_error(where + ": the vocabulary lacks " + json(ch).dump() + " and the tokenizer has no unk_token");
    if (fuse_unk && !syms.empty() && syms.back().id == unk) continue;
    syms.push_back({unk, 0, 0});
  }
  const int64_t n = int64_t(syms.size());
  for (int64_t i = 0; i < n; ++i) syms[size_t(i)].prev = i - 1, syms[size_t(i)].next = i + 1 < n ? i + 1 : -1;
  struct Cand {
    int32_t rank;
    int64_t pos;
    int32_t left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> q;
  auto consider = [&](int64_t i) {
    if (i < 0 || syms[size_t(i)].next < 0) return;
    const int32_t a = syms[size_t(i)].id, b = syms[size_t(syms[size_t(i)].next)].id;
    auto it = merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
    if (it != merges.end()) q.push({it->second.first, i, a, b, it->second.second});
  };
  for (int64_t i = 0; i + 1 < n; ++i) consider(i);
  std::vector<bool> alive(size_t(n), true);
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    Sym& s = syms[size_t(c.pos)];
    if (!alive[size_t(c.pos)] || s.id != c.left || s.next < 0 || syms[size_t(s.next)].id != c.right) continue;
    const int64_t r = s.next;
    s.id = c.merged;
    s.next = syms[size_t(r)].next;
    if (s.next >= 0) syms[size_t(s.next)].prev = c.pos;
    alive[size_t(r)] = false;
    consider(s.prev);
    consider(c.pos);
  }
  for (int64_t i = 0; i < n; i = syms[size_t(i)].next) {
    out.push_back(syms[size_t(i)].id);
    if (syms[size_t(i)].next < 0) break;
  }
}

HfTokenizer::HfTokenizer(std::string_view text, const std::string& where) : impl_(std::make_unique<Impl>()) {
  try {
    parse(text, where);
  } catch (const nlohmann::json::exception& e) {  // a value of an unexpected JSON type somewhere
    user_error(where + ": unexpected content (" + std::string(e.what()) + ")");
  }
}

void HfTokenizer::parse(std::string_view text, const std::string& where) {
  Impl& m = *impl_;
  m.where = where;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    user_error(where + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) user_error(where + ": needs a \"model\" object");
  const json& model = j["model"];
  const std::string type = str(model, "type", where, "BPE");
  if (type != "BPE") user_error(where + ": model type \"" + type + "\" is not supported (BPE)");
  if (!model.contains("vocab") || !model["vocab"].is_object()) user_error(where + ": model.vocab must be an object {token: id}");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(k) && model[k].is_string() && !model[k].get<std::string>().empty())
      user_error(where + ": model." + k + " is not supported");
  auto set_token = [&](const std::string& tok, const json& id, const std::string& what) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t(1) << 21))
      user_error(where + ": " + what + " " + json(tok).dump() + " has a bad id " + id.dump());
    const auto k = id.get<int32_t>();
    if (size_t(k) >= m.id_to_token.size()) m.id_to_token.resize(size_t(k) + 1);
    m.id_to_token[size_t(k)] = tok;
    if (what == "token") m.vocab[tok] = k;  // the model's own: BPE never yields an added token
  };
  for (auto& [tok, id] : model["vocab"].items()) set_token(tok, id, "token");
  const json merges = model.value("merges", json::array());
  if (!merges.is_array()) user_error(where + ": model.merges must be a list");
  int32_t rank = 0;
  for (const json& mg : merges) {
    std::string a, b;
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) user_error(where + ": merge " + mg.dump() + " is not two symbols");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      a = mg[0].get<std::string>(), b = mg[1].get<std::string>();
    } else {
      user_error(where + ": merge " + mg.dump() + " is not a string or a pair");
    }
    auto ia = m.vocab.find(a), ib = m.vocab.find(b), iab = m.vocab.find(a + b);
    if (ia == m.vocab.end() || ib == m.vocab.end() || iab == m.vocab.end())
      user_error(where + ": merge " + mg.dump() + " names a token the vocabulary lacks");
    m.merges.emplace((uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second), std::pair{rank++, iab->second});
  }
  m.ignore_merges = flag(model, "ignore_merges", false);
  m.byte_fallback = flag(model, "byte_fallback", false);
  m.fuse_unk = flag(model, "fuse_unk", false);
  const std::string unk = str(model, "unk_token", where);
  if (!unk.empty()) {
    auto it = m.vocab.find(unk);
    if (it == m.vocab.end()) user_error(where + ": unk_token " + json(unk).dump() + " is not in the vocabulary");
    m.unk = it->second;
  }
  for (const json& a : j.value("added_tokens", json::array())) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id"))
      user_error(where + ": added_tokens entries need content and id");
    const std::string c = a["content"].get<std::string>();
    if (c.empty()) continue;
    set_token(c, a["id"], "added token");
    m.added.push_back({c, a["id"].get<int32_t>(), flag(a, "lstrip", false), flag(a, "rstrip", false),
                       flag(a, "single_word", false), flag(a, "normalized", !flag(a, "special", false))});
  }
  m.parse_normalizer(j.value("normalizer", json()));
  // A normalized token is matched in normalized text as its content normalized, and that is
  // its text for the decoder too (tokenizers' id_to_token: Llama 2's "[R]" is "▁[R]").
  for (AddedToken& a : m.added)
    if (a.normalized) m.id_to_token[size_t(a.id)] = a.content = m.normalize(a.content);
  m.parse_pretokenizer(j.value("pre_tokenizer", json()));
  m.parse_decoder(j.value("decoder", json()));
  const std::vector<char32_t> alphabet = gpt2_byte_alphabet();
  m.byte_char.resize(256);
  for (int b = 0; b < 256; ++b) {
    m.byte_char[size_t(b)] = encode_utf8(alphabet[size_t(b)]);
    m.char_byte[alphabet[size_t(b)]] = static_cast<unsigned char>(b);
  }
}

HfTokenizer::~HfTokenizer() = default;

int64_t HfTokenizer::vocab_size() const { return int64_t(impl_->id_to_token.size()); }

std::vector<int32_t> HfTokenizer::encode(std::string_view text, const std::string& where) const {
  const Impl& m = *impl_;
  decode_utf8(text, where);  // invalid UTF-8: user error naming the input
  // Raw added tokens split first; the normalizer runs on each remaining piece, normalized added
  // tokens split that; the pre-tokenizer and the model see the rest (tokenizers' order).
  std::vector<int32_t> ids;
  for (const AddedSplit& raw : split_added_tokens(text, m.added, false)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    for (const AddedSplit& p : split_added_tokens(m.normalize(raw.text), m.added, true)) {
      if (p.id >= 0) ids.push_back(p.id);
      else
        for (const Piece& q : m.pretokenize({p.text, raw.offset == 0 && p.offset == 0})) m.bpe(q.text, ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  const Impl& m = *impl_;
  std::vector<std::string> toks;
  for (int32_t id : ids)
    if (id >= 0 && size_t(id) < m.id_to_token.size()) toks.push_back(m.id_to_token[size_t(id)]);
  for (const Impl::Dec& d : m.decs) {
    if (d.type == "ByteLevel") {
      std::string bytes;
      for (const std::string& t : toks)
        for (const CodePoint& c : decode_utf8(t, m.where)) {
          auto it = m.char_byte.find(c.cp);
          if (it != m.char_byte.end()) bytes += char(it->second);
          else bytes += t.substr(c.begin, c.end - c.begin);
        }
      toks = {lossy_utf8(bytes)};
    } else if (d.type == "Replace") {
      for (std::string& t : toks) t = replace_all(t, d.a, d.b);
    } else if (d.type == "ByteFallback") {
      std::vector<std::string> out;
      std::string pending;
      int64_t n_pending = 0;
      auto flush = [&] {
        if (!n_pending) return;
        try {
          decode_utf8(pending, "bytes");
          out.push_back(pending);
        } catch (const SaeError&) {
          for (int64_t i = 0; i < n_pending; ++i) out.push_back("\xEF\xBF\xBD");
        }
        pending.clear(), n_pending = 0;
      };
      for (const std::string& t : toks) {
        unsigned v = 0;
        if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>' && std::sscanf(t.c_str() + 3, "%2X", &v) == 1) {
          pending += char(v), ++n_pending;
        } else {
          flush();
          out.push_back(t);
        }
      }
      flush();
      toks = std::move(out);
    } else if (d.type == "Fuse") {
      std::string all;
      for (const std::string& t : toks) all += t;
      toks = {all};
    } else if (d.type == "Strip") {
      for (std::string& t : toks) {
        for (int64_t i = 0; i < d.start && t.rfind(d.a, 0) == 0; ++i) t.erase(0, d.a.size());
        for (int64_t i = 0; i < d.stop && t.size() >= d.a.size() && t.compare(t.size() - d.a.size(), d.a.size(), d.a) == 0; ++i)
          t.erase(t.size() - d.a.size());
      }
    } else if (d.type == "Metaspace") {
      // As tokenizers: every replacement in the first token is dropped (unless "never"), a space elsewhere.
      for (size_t i = 0; i < toks.size(); ++i)
        toks[i] = replace_all(toks[i], d.a, i == 0 && d.prepend_scheme != "never" ? "" : " ");
    }
  }
  std::string out;
  for (const std::string& t : toks) out += t;
  return out;
}

std::string HfTokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  if (id < 0 || size_t(id) >= m.id_to_token.size()) return "";
  const std::string& t = m.id_to_token[size_t(id)];
  if (m.byte_level) {
    std::string bytes;
    for (const CodePoint& c : decode_utf8(t, m.where)) {
      auto it = m.char_byte.find(c.cp);
      bytes += it != m.char_byte.end() ? std::string(1, char(it->second)) : t.substr(c.begin, c.end - c.begin);
    }
    return bytes;
  }
  unsigned v = 0;
  if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>' && std::sscanf(t.c_str() + 3, "%2X", &v) == 1)
    return std::string(1, char(v));
  return replace_all(t, "\xE2\x96\x81", " ");
}

std::unique_ptr<HfTokenizer> open_hf_tokenizer(const std::string& model_dir) {
  if (is_gguf_model_path(model_dir)) return open_gguf_tokenizer(GgufFile(model_dir));
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
  if (!path_exists(path)) return nullptr;
  return std::make_unique<HfTokenizer>(read_file(path), path);
}

}  // namespace saepipe
