// Shape of the decision: see tokenizer_bos.hpp.
#include "pipeline/model/tokenizer_bos.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/model/gguf.hpp"
#include "pipeline/model/gguf_llama.hpp"
#include "pipeline/model/gguf_model.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

json parse_json(const std::string& text, const std::string& where, const json::parser_callback_t& keep = nullptr) {
  try {
    return json::parse(text, keep);
  } catch (const json::exception& e) {
    user_error(where + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

// The token a post-processor puts before the text, if any; `where` names it in errors.
TokenizerBos from_post_processor(const json& p, const std::string& where) {
  TokenizerBos r;
  if (p.is_null()) {
    r.reason = where + " is null (adds nothing)";
    return r;
  }
  if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) user_error(where + ": needs a string \"type\"");
  const std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    if (!p.contains("processors") || !p["processors"].is_array()) user_error(where + ": Sequence needs \"processors\"");
    r.reason = where + " adds nothing";
    for (size_t i = 0; i < p["processors"].size(); ++i) {
      const TokenizerBos s = from_post_processor(p["processors"][i], where + ".processors[" + std::to_string(i) + "]");
      if (s.adds) {
        if (r.adds) user_error(where + ": more than one processor adds tokens before the text");
        r = s;
      }
    }
    return r;
  }
  if (type == "ByteLevel") {
    r.reason = where + " is ByteLevel (adds nothing)";
    return r;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const json& cls = p.contains("cls") ? p["cls"] : json();
    if (!cls.is_array() || cls.size() != 2 || !cls[0].is_string() || !cls[1].is_number_integer())
      user_error(where + ": " + type + " needs \"cls\": [token, id]");
    r = {true, cls[1].get<int64_t>(), where + " (" + type + ") starts with " + cls[0].get<std::string>()};
    return r;
  }
  if (type != "TemplateProcessing")
    user_error(where + ": post-processor \"" + type +
               "\" is not supported (TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
  const json single = p.value("single", json());
  if (!single.is_array()) user_error(where + ": TemplateProcessing needs a \"single\" template");
  std::vector<std::string> before;  // special tokens before the text
  for (const json& piece : single) {
    if (piece.is_object() && piece.contains("Sequence")) break;
    if (!piece.is_object() || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object() ||
        !piece["SpecialToken"].value("id", json()).is_string())
      user_error(where + ": TemplateProcessing \"single\" pieces must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}");
    before.push_back(piece["SpecialToken"]["id"].get<std::string>());
  }
  if (before.empty()) {
    r.reason = where + " template starts with the text (adds nothing before it)";
    return r;
  }
  if (before.size() > 1)
    user_error(where + ": the template puts " + std::to_string(before.size()) +
               " special tokens before the text; a harvest prepends one BOS (set harvest.prepend_bos)");
  const json specials = p.value("special_tokens", json::object());
  const json tok = specials.is_object() && specials.contains(before[0]) ? specials[before[0]] : json();
  const json ids = tok.is_object() ? tok.value("ids", json()) : json();
  if (!ids.is_array() || ids.size() != 1 || !ids[0].is_number_integer() || ids[0].get<int64_t>() < 0)
    user_error(where + ": special token " + json(before[0]).dump() + " of the template needs exactly one id in \"special_tokens\"");
  r = {true, ids[0].get<int64_t>(), where + " template starts with " + before[0]};
  return r;
}

// tokenizer_config.json's bos_token: a string, {"content": ...} or null.
std::string bos_text(const json& cfg, const std::string& where) {
  const json b = cfg.value("bos_token", json());
  if (b.is_string()) return b.get<std::string>();
  if (b.is_object() && b.value("content", json()).is_string()) return b["content"].get<std::string>();
  if (!b.is_null()) user_error(where + ": \"bos_token\" must be a string, {\"content\": ...} or null");
  return "";
}

// GPT-2's tokenizer files without tokenizer.json: add_bos_token (default false), the id of
// bos_token from vocab.json or the config's added_tokens_decoder.
TokenizerBos from_tokenizer_config(const std::string& dir, const json& cfg, const std::string& where) {
  TokenizerBos r;
  const bool add = cfg.value("add_bos_token", json(false)).is_boolean() && cfg.value("add_bos_token", false);
  const std::string bos = bos_text(cfg, where);
  if (!add || bos.empty()) {
    r.reason = where + (add ? " names no bos_token (adds nothing)" : " has no add_bos_token = true (adds nothing)");
    return r;
  }
  if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object())
    for (auto& [id, t] : cfg["added_tokens_decoder"].items())
      if (t.is_object() && t.value("content", json()) == bos) return {true, std::stoll(id), where + " add_bos_token with " + bos};
  const std::string vocab_path = (std::filesystem::path(dir) / "vocab.json").string();
  if (path_exists(vocab_path)) {
    const json v = parse_json(read_file(vocab_path), vocab_path);
    if (v.is_object() && v.contains(bos) && v[bos].is_number_integer())
      return {true, v[bos].get<int64_t>(), where + " add_bos_token with " + bos};
  }
  user_error(where + ": bos_token " + json(bos).dump() + " is in neither vocab.json nor added_tokens_decoder");
}

}  // namespace

TokenizerBos tokenizer_bos(const std::string& model_path) {
  if (is_gguf_model_path(model_path)) {
    const GgufTokenizerData t = read_gguf_tokenizer(GgufFile(model_path));
    if (t.add_bos && t.bos < 0)
      user_error(model_path + ": tokenizer.ggml.add_bos_token is set but there is no tokenizer.ggml.bos_token_id");
    return {t.add_bos, t.add_bos ? t.bos : -1, model_path + " tokenizer.ggml.add_bos_token"};
  }
  const std::filesystem::path dir(model_path);
  const std::string tok_path = (dir / "tokenizer.json").string(), cfg_path = (dir / "tokenizer_config.json").string();
  const bool has_tok = path_exists(tok_path), has_cfg = path_exists(cfg_path);
  if (!has_tok && !has_cfg && !path_exists((dir / "vocab.json").string()))
    user_error(model_path + ": harvest.prepend_bos = \"auto\" needs the model's tokenizer files (tokenizer.json or "
               "tokenizer_config.json) to tell whether it starts a text with BOS; there are none: set "
               "harvest.prepend_bos = true or false");
  json cfg = json::object();
  if (has_cfg) {
    cfg = parse_json(read_file(cfg_path), cfg_path);
    if (!cfg.is_object()) user_error(cfg_path + ": must be a JSON object");
  }
  if (!has_tok) return from_tokenizer_config(model_path, cfg, cfg_path);

  // Only the post-processor of tokenizer.json is kept (a vocabulary may be tens of MB).
  const json tok = parse_json(read_file(tok_path), tok_path, [](int depth, json::parse_event_t event, json& parsed) {
    return !(depth == 1 && event == json::parse_event_t::key && parsed != "post_processor");
  });
  if (!tok.is_object()) user_error(tok_path + ": must be a JSON object");
  TokenizerBos r = from_post_processor(tok.value("post_processor", json()), tok_path + " post_processor");
  const std::string cls = cfg.value("tokenizer_class", json("")).is_string() ? cfg.value("tokenizer_class", "") : "";
  if (cls == "GPTNeoXTokenizer" || cls == "GPTNeoXTokenizerFast")
    r = {false, -1, cfg_path + " tokenizer_class " + cls + " (transformers rebuilds its post-processor without BOS)"};
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean() && cfg["add_bos_token"].get<bool>() != r.adds)
    user_error(cfg_path + ": add_bos_token = " + (r.adds ? "false" : "true") + " but " + r.reason +
               "; transformers 5 follows tokenizer.json, transformers 4 followed add_bos_token: set "
               "harvest.prepend_bos = true or false");
  return r;
}

}  // namespace saepipe
