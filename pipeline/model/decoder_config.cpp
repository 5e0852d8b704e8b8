// config.json -> DecoderConfig, family by family, following transformers 5's configuration
// classes (their defaults where a field may be left out) and the older layouts still found on
// the Hub (rope_theta + rope_scaling, rotary_pct, rope_local_base_freq, sliding_window_pattern).
#include "pipeline/model/decoder_config.hpp"

#include <cmath>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

bool present(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

int64_t get_int(const json& j, const char* key, const std::string& where, int64_t fallback = -1) {
  if (!present(j, key)) {
    if (fallback >= 0) return fallback;
    user_error(where + ": lacks \"" + key + "\"");
  }
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1)
    user_error(where + ": \"" + key + "\" must be a positive integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

double get_number(const json& j, const char* key, const std::string& where, double fallback) {
  if (!present(j, key)) return fallback;
  if (!j[key].is_number() || !std::isfinite(j[key].get<double>()))
    user_error(where + ": \"" + key + "\" must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

// A positive number or null (null and absent: `fallback`; 0 means "none").
double get_optional_positive(const json& j, const char* key, const std::string& where, double fallback) {
  if (!j.contains(key)) return fallback;
  if (j[key].is_null()) return 0;
  const double v = get_number(j, key, where, 0);
  if (v <= 0) user_error(where + ": \"" + key + "\" must be positive or null, got " + j[key].dump());
  return v;
}

bool get_bool(const json& j, const char* key, const std::string& where, bool fallback) {
  if (!present(j, key)) return fallback;
  if (!j[key].is_boolean()) user_error(where + ": \"" + key + "\" must be true or false, got " + j[key].dump());
  return j[key].get<bool>();
}

// bos_token_id / eos_token_id: an id, a list of ids (the first is used) or null (-1).
int64_t get_token(const json& j, const char* key, const std::string& where, int64_t vocab, int64_t fallback) {
  if (!j.contains(key)) return fallback;
  json v = j[key];
  if (v.is_array()) v = v.empty() ? json() : v[0];
  if (v.is_null()) return -1;
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab)
    user_error(where + ": \"" + key + "\" must be a token id below vocab_size " + std::to_string(vocab) + ", got " +
               j[key].dump());
  return v.get<int64_t>();
}

Activation parse_activation(const json& j, const char* key, const std::string& where, const char* fallback) {
  const std::string a = present(j, key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
  if (a == "silu" || a == "swish") return Activation::Silu;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh") return Activation::GeluTanh;
  if (a == "gelu") return Activation::GeluExact;
  user_error(where + ": \"" + key + "\" \"" + a + "\" is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh)");
}

// One rope_parameters / rope_scaling object; theta from the object, else `theta`.
RopeSpec parse_rope(const json& r, const std::string& where, double theta, int64_t max_positions) {
  RopeSpec s;
  s.theta = theta;
  if (r.is_null()) return s;
  if (!r.is_object()) user_error(where + ": must be an object or null, got " + r.dump());
  if (present(r, "rope_type") || present(r, "type")) {
    const json& t = present(r, "rope_type") ? r["rope_type"] : r["type"];
    if (!t.is_string()) user_error(where + ": rope_type must be a string");
    s.type = t.get<std::string>();
  }
  s.theta = get_number(r, "rope_theta", where, theta);
  if (s.theta <= 0) user_error(where + ": rope_theta must be positive");
  if (s.type == "default") return s;
  if (s.type != "linear" && s.type != "llama3")
    user_error(where + ": rope type \"" + s.type + "\" is not supported (supported: default, linear, llama3)");
  if (!present(r, "factor")) user_error(where + ": rope type \"" + s.type + "\" needs \"factor\"");
  s.factor = get_number(r, "factor", where, 1);
  if (s.factor <= 0) user_error(where + ": rope factor must be positive");
  if (s.type == "llama3") {
    for (const char* k : {"low_freq_factor", "high_freq_factor"})
      if (!present(r, k)) user_error(where + ": rope type \"llama3\" needs \"" + k + "\"");
    s.low_freq_factor = get_number(r, "low_freq_factor", where, 1);
    s.high_freq_factor = get_number(r, "high_freq_factor", where, 4);
    s.original_max_positions = get_int(r, "original_max_position_embeddings", where, max_positions);
    if (!(s.high_freq_factor > s.low_freq_factor) || s.low_freq_factor <= 0)
      user_error(where + ": llama3 rope needs 0 < low_freq_factor < high_freq_factor");
  }
  return s;
}

struct FamilyDefaults {
  double theta_global = 10000, theta_local = 10000;
  int64_t head_dim = -1;  // -1: d_model / n_heads
  int64_t n_positions = 2048;
};

// rope_parameters (transformers 5: flat, or nested by layer type) or the older rope_theta +
// rope_scaling (+ Gemma 3's rope_local_base_freq, applying rope_scaling to global layers only).
void parse_rotary(const json& j, const std::string& where, const FamilyDefaults& fd, DecoderConfig& c) {
  double partial = get_number(j, "partial_rotary_factor", where, get_number(j, "rotary_pct", where, 1.0));
  const bool gemma3 = c.model_type == "gemma3_text";
  if (present(j, "rope_parameters")) {
    const json& rp = j["rope_parameters"];
    if (!rp.is_object()) user_error(where + ": \"rope_parameters\" must be an object");
    const double theta = get_number(j, "rope_theta", where, fd.theta_global);
    if (rp.contains("full_attention") || rp.contains("sliding_attention")) {
      c.rope_global = parse_rope(rp.value("full_attention", json()), where + ": rope_parameters.full_attention", theta,
                                 c.n_positions);
      c.rope_local = rp.contains("sliding_attention")
                         ? parse_rope(rp["sliding_attention"], where + ": rope_parameters.sliding_attention",
                                      gemma3 ? fd.theta_local : theta, c.n_positions)
                         : c.rope_global;
      if (rp.contains("full_attention") && rp["full_attention"].is_object())
        partial = get_number(rp["full_attention"], "partial_rotary_factor", where, partial);
    } else {
      c.rope_global = c.rope_local = parse_rope(rp, where + ": rope_parameters", theta, c.n_positions);
      partial = get_number(rp, "partial_rotary_factor", where, partial);
    }
  } else {
    const double theta = get_number(j, "rope_theta", where, get_number(j, "rotary_emb_base", where, fd.theta_global));
    const json scaling = j.value("rope_scaling", json());
    c.rope_global = parse_rope(scaling, where + ": rope_scaling", theta, c.n_positions);
    c.rope_global.theta = theta;
    c.rope_local = c.rope_global;
    if (gemma3) {
      c.rope_local = RopeSpec();
      c.rope_local.theta = get_number(j, "rope_local_base_freq", where, fd.theta_local);
    }
  }
  if (!(partial > 0 && partial <= 1)) user_error(where + ": partial_rotary_factor must be in (0, 1]");
  c.rotary_dim = int64_t(double(c.head_dim) * partial);
  if (c.rotary_dim < 2 || c.rotary_dim % 2 != 0)
    user_error(where + ": the rotary dimension head_dim * partial_rotary_factor = " + std::to_string(c.rotary_dim) +
               " must be a positive even number");
}

// Which layers use a sliding window: layer_types when given, else the family's rule.
void parse_layer_types(const json& j, const std::string& where, DecoderConfig& c) {
  const int64_t L = c.n_layers;
  c.local_layer.assign(size_t(L), 0);
  const std::string& t = c.model_type;
  if (t == "llama" || t == "gpt_neox" || t == "gpt2") return;
  const bool has_window = present(j, "sliding_window");
  if (t == "mistral") {  // transformers' Mistral ignores layer_types: one window for every layer
    if (has_window) c.local_layer.assign(size_t(L), 1);
  } else if (present(j, "layer_types")) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || int64_t(lt.size()) != L)
      user_error(where + ": \"layer_types\" must list one type per layer (" + std::to_string(L) + ")");
    for (int64_t l = 0; l < L; ++l) {
      const std::string s = lt[size_t(l)].is_string() ? lt[size_t(l)].get<std::string>() : lt[size_t(l)].dump();
      if (s == "sliding_attention") c.local_layer[size_t(l)] = 1;
      else if (s != "full_attention")
        user_error(where + ": layer_types[" + std::to_string(l) + "] \"" + s +
                   "\" is not supported (full_attention, sliding_attention)");
    }
  } else if (t == "qwen2" || t == "qwen3") {
    if (get_bool(j, "use_sliding_window", where, false) && has_window) {
      const int64_t first = present(j, "max_window_layers") ? get_int(j, "max_window_layers", where) : 28;
      for (int64_t l = first; l < L; ++l) c.local_layer[size_t(l)] = 1;
    }
  } else if (t == "gemma2") {
    for (int64_t l = 0; l < L; l += 2) c.local_layer[size_t(l)] = 1;
  } else if (t == "gemma3_text") {
    const int64_t pattern = get_int(j, "sliding_window_pattern", where, get_int(j, "_sliding_window_pattern", where, 6));
    for (int64_t l = 0; l < L; ++l) c.local_layer[size_t(l)] = (l + 1) % pattern != 0;
  }
  bool any = false;
  for (uint8_t v : c.local_layer) any = any || v;
  if (any) {
    if (!has_window) user_error(where + ": sliding-window layers need \"sliding_window\"");
    c.sliding_window = get_int(j, "sliding_window", where);
  }
}

DecoderConfig gpt2_config(const json& j, const std::string& where) {
  DecoderConfig c;
  c.model_type = "gpt2";
  c.d_model = get_int(j, "n_embd", where);
  c.n_layers = get_int(j, "n_layer", where);
  c.n_heads = c.n_kv_heads = get_int(j, "n_head", where);
  c.n_positions = get_int(j, "n_positions", where, present(j, "n_ctx") ? get_int(j, "n_ctx", where) : -1);
  c.vocab_size = get_int(j, "vocab_size", where);
  c.d_mlp = get_int(j, "n_inner", where, 4 * c.d_model);
  if (c.d_model % c.n_heads != 0)
    user_error(where + ": n_embd " + std::to_string(c.d_model) + " is not a multiple of n_head " + std::to_string(c.n_heads));
  c.head_dim = c.d_model / c.n_heads;
  c.norm = NormType::LayerNorm;
  c.norm_bias = true;
  c.norm_eps = get_number(j, "layer_norm_epsilon", where, 1e-5);
  c.qkv_bias = c.out_bias = c.mlp_bias = true;
  c.learned_positions = true;
  c.local_layer.assign(size_t(c.n_layers), 0);
  c.activation = parse_activation(j, "activation_function", where, "gelu_new");
  c.attn_scale = get_bool(j, "scale_attn_weights", where, true) ? 1.0 / std::sqrt(double(c.head_dim)) : 1.0;
  if (get_bool(j, "scale_attn_by_inverse_layer_idx", where, false))
    user_error(where + ": scale_attn_by_inverse_layer_idx = true is not supported");
  c.tied_embeddings = get_bool(j, "tie_word_embeddings", where, true);
  c.bos_token = get_token(j, "bos_token_id", where, c.vocab_size, std::min<int64_t>(50256, c.vocab_size - 1));
  c.eos_token = get_token(j, "eos_token_id", where, c.vocab_size, std::min<int64_t>(50256, c.vocab_size - 1));
  return c;
}

// The families with Hugging Face's Llama-style field names (and GPT-NeoX, which shares them).
DecoderConfig hf_config(const json& j, const std::string& where, const std::string& type) {
  DecoderConfig c;
  c.model_type = type;
  FamilyDefaults fd;
  const bool gemma = type == "gemma2" || type == "gemma3_text";
  if (type == "mistral") fd.n_positions = 131072;
  if (type == "qwen2" || type == "qwen3") fd.n_positions = 32768;
  if (type == "qwen3") fd.head_dim = 128;
  if (type == "gemma2") fd.head_dim = 256, fd.n_positions = 8192;
  if (type == "gemma3_text") fd.head_dim = 256, fd.n_positions = 131072, fd.theta_global = 1e6;

  c.d_model = get_int(j, "hidden_size", where);
  c.n_layers = get_int(j, "num_hidden_layers", where);
  c.n_heads = get_int(j, "num_attention_heads", where);
  c.n_kv_heads = get_int(j, "num_key_value_heads", where, c.n_heads);
  c.d_mlp = get_int(j, "intermediate_size", where);
  c.vocab_size = get_int(j, "vocab_size", where);
  c.n_positions = get_int(j, "max_position_embeddings", where, fd.n_positions);
  if (type == "gpt_neox") {
    if (present(j, "head_dim") && get_int(j, "head_dim", where) * c.n_heads != c.d_model)
      user_error(where + ": gpt_neox needs head_dim = hidden_size / num_attention_heads");
    c.n_kv_heads = c.n_heads;
  }
  if (c.n_heads % c.n_kv_heads != 0)
    user_error(where + ": num_attention_heads " + std::to_string(c.n_heads) + " is not a multiple of num_key_value_heads " +
               std::to_string(c.n_kv_heads));
  if (fd.head_dim < 0 && c.d_model % c.n_heads != 0 && !present(j, "head_dim"))
    user_error(where + ": hidden_size " + std::to_string(c.d_model) + " is not a multiple of num_attention_heads " +
               std::to_string(c.n_heads) + " and no head_dim is given");
  c.head_dim = get_int(j, "head_dim", where, fd.head_dim > 0 ? fd.head_dim : c.d_model / c.n_heads);

  if (type == "gpt_neox") {
    c.norm = NormType::LayerNorm;
    c.norm_bias = true;
    c.norm_eps = get_number(j, "layer_norm_eps", where, 1e-5);
    c.qkv_bias = c.out_bias = get_bool(j, "attention_bias", where, true);
    c.mlp_bias = true;
    c.activation = parse_activation(j, "hidden_act", where, "gelu");
    c.parallel_residual = get_bool(j, "use_parallel_residual", where, true);
    c.tied_embeddings = get_bool(j, "tie_word_embeddings", where, false);
  } else {
    c.norm = NormType::RmsNorm;
    c.norm_eps = get_number(j, "rms_norm_eps", where, 1e-6);
    c.gated_mlp = true;
    c.activation = gemma ? parse_activation(j, present(j, "hidden_activation") ? "hidden_activation" : "hidden_act", where,
                                            "gelu_pytorch_tanh")
                         : parse_activation(j, "hidden_act", where, "silu");
    if (type == "qwen2") {
      c.qkv_bias = true;  // Qwen2Attention: biases on q, k, v; none on o
    } else {
      c.qkv_bias = c.out_bias = get_bool(j, "attention_bias", where, false);
    }
    c.mlp_bias = get_bool(j, "mlp_bias", where, false);
    c.qk_norm = type == "qwen3" || type == "gemma3_text";
    c.tied_embeddings = get_bool(j, "tie_word_embeddings", where, gemma);
  }
  c.attn_scale = 1.0 / std::sqrt(double(c.head_dim));
  if (gemma) {
    c.norm_unit_offset = true;
    c.post_sublayer_norms = true;
    c.embed_scale = float(std::sqrt(double(c.d_model)));
    c.attn_scale = 1.0 / std::sqrt(get_number(j, "query_pre_attn_scalar", where, 256));
    c.attn_softcap = get_optional_positive(j, "attn_logit_softcapping", where, type == "gemma2" ? 50 : 0);
    c.final_softcap = get_optional_positive(j, "final_logit_softcapping", where, type == "gemma2" ? 30 : 0);
    if (get_bool(j, "use_bidirectional_attention", where, false))
      user_error(where + ": use_bidirectional_attention = true is not supported (causal decoders only)");
  }
  parse_rotary(j, where, fd, c);
  parse_layer_types(j, where, c);
  const int64_t default_bos = type == "gemma2" || type == "gemma3_text" ? 2 : type == "gpt_neox" ? 0 : type == "llama" || type == "mistral" ? 1 : -1;
  const int64_t default_eos = gemma ? 1 : type == "gpt_neox" || type == "llama" || type == "mistral" ? 2 : -1;
  c.bos_token = get_token(j, "bos_token_id", where, c.vocab_size, default_bos < c.vocab_size ? default_bos : -1);
  c.eos_token = get_token(j, "eos_token_id", where, c.vocab_size, default_eos < c.vocab_size ? default_eos : -1);
  return c;
}

const char* rope_json_type(const RopeSpec& r) { return r.type.c_str(); }

nlohmann::json rope_json(const RopeSpec& r) {
  json o = {{"type", rope_json_type(r)}, {"theta", r.theta}};
  if (r.type != "default") o["factor"] = r.factor;
  if (r.type == "llama3")
    o["low_freq_factor"] = r.low_freq_factor, o["high_freq_factor"] = r.high_freq_factor,
    o["original_max_positions"] = r.original_max_positions;
  return o;
}

}  // namespace

std::vector<float> RopeSpec::inverse_frequencies(int64_t rotary_dim) const {
  std::vector<float> inv(size_t(rotary_dim / 2));
  for (int64_t i = 0; i < rotary_dim / 2; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in fp32.
    const float expo = float(2 * i) / float(rotary_dim);
    float f = 1.0f / std::pow(float(theta), expo);
    if (type == "linear") {
      f = f / float(factor);
    } else if (type == "llama3") {
      const double lo_wavelen = double(original_max_positions) / low_freq_factor;
      const double hi_wavelen = double(original_max_positions) / high_freq_factor;
      const double wavelen = 2 * M_PI / double(f);
      if (wavelen > lo_wavelen) {
        f = f / float(factor);
      } else if (!(wavelen < hi_wavelen)) {  // between the bands: interpolate
        const float smooth = float((double(original_max_positions) / wavelen - low_freq_factor) /
                                   (high_freq_factor - low_freq_factor));
        f = (1 - smooth) * f / float(factor) + smooth * f;
      }
    }
    inv[size_t(i)] = f;
  }
  return inv;
}

void DecoderConfig::validate(const std::string& where) const {
  for (auto [name, v] : {std::pair{"d_model", d_model}, {"n_layers", n_layers}, {"n_heads", n_heads},
                         {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim}, {"d_mlp", d_mlp},
                         {"vocab_size", vocab_size}, {"n_positions", n_positions}})
    if (v < 1) user_error(where + ": " + name + " must be positive");
  if (n_heads % n_kv_heads != 0) user_error(where + ": n_heads is not a multiple of n_kv_heads");
  if (int64_t(local_layer.size()) != n_layers) user_error(where + ": one layer type per layer is needed");
  if (!learned_positions && (rotary_dim < 2 || rotary_dim > head_dim || rotary_dim % 2))
    user_error(where + ": bad rotary dimension " + std::to_string(rotary_dim));
}

json DecoderConfig::to_json() const {
  static const char* acts[] = {"gelu_tanh", "gelu", "silu"};
  json local = json::array();
  for (uint8_t v : local_layer) local.push_back(int(v));
  json o = {{"model_type", model_type},
            {"d_model", d_model},
            {"n_layers", n_layers},
            {"n_heads", n_heads},
            {"n_kv_heads", n_kv_heads},
            {"head_dim", head_dim},
            {"d_mlp", d_mlp},
            {"vocab_size", vocab_size},
            {"n_positions", n_positions},
            {"norm", norm == NormType::LayerNorm ? "layernorm" : "rmsnorm"},
            {"norm_eps", norm_eps},
            {"norm_bias", norm_bias},
            {"norm_unit_offset", norm_unit_offset},
            {"post_sublayer_norms", post_sublayer_norms},
            {"qk_norm", qk_norm},
            {"qkv_bias", qkv_bias},
            {"out_bias", out_bias},
            {"positions", learned_positions ? "learned" : "rotary"},
            {"attn_scale", attn_scale},
            {"attn_softcap", attn_softcap},
            {"final_softcap", final_softcap},
            {"gated_mlp", gated_mlp},
            {"activation", acts[int(activation)]},
            {"mlp_bias", mlp_bias},
            {"parallel_residual", parallel_residual},
            {"embed_scale", embed_scale},
            {"tied_embeddings", tied_embeddings}};
  if (!learned_positions) {
    o["rotary_dim"] = rotary_dim;
    o["rope_global"] = rope_json(rope_global);
    o["rope_local"] = rope_json(rope_local);
  }
  if (sliding_window > 0) o["sliding_window"] = sliding_window, o["local_layers"] = local;
  return o;
}

const char* supported_model_types() { return "gpt2, gpt_neox, llama, mistral, qwen2, qwen3, gemma2, gemma3_text"; }

DecoderConfig decoder_config_from_hf(const json& j, const std::string& where) {
  if (!j.is_object()) user_error(where + ": not a JSON object");
  const std::string type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  DecoderConfig c;
  if (type == "gpt2") {
    c = gpt2_config(j, where);
  } else if (type == "gpt_neox" || type == "llama" || type == "mistral" || type == "qwen2" || type == "qwen3" ||
             type == "gemma2" || type == "gemma3_text") {
    c = hf_config(j, where, type);
  } else {
    user_error(where + ": model_type \"" + type + "\" is not supported (supported: " + supported_model_types() + ")");
  }
  c.validate(where);
  return c;
}

DecoderConfig read_decoder_config(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!path_exists(path)) user_error(model_dir + ": no config.json (a Hugging Face model directory is needed)");
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    user_error(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  return decoder_config_from_hf(j, path);
}

}  // namespace saepipe
