#include "pipeline/model/gguf_llama.hpp"

#include <cmath>

#include "pipeline/core/errors.hpp"

namespace saepipe {

namespace {

// A positive integer no larger than `most`.
int64_t positive(const GgufFile& f, const std::string& key, int64_t value, int64_t most = int64_t(1) << 31) {
  if (value <= 0 || value > most)
    user_error(f.path() + ": metadata '" + key + "' is " + std::to_string(value) + ", must be in [1, " +
               std::to_string(most) + "]");
  return value;
}

int64_t tensor_rows(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) user_error(f.path() + ": lacks tensor '" + name + "'");
  if (t->ne.size() != 2) user_error(f.path() + ": tensor '" + name + "' is not a matrix");
  return t->ne[1];
}

}  // namespace

GgufLlamaParams read_llama_params(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama")
    user_error(f.path() + ": general.architecture is '" + arch + "'; this reader supports 'llama' GGUF files");
  GgufLlamaParams p;
  p.n_layers = positive(f, "llama.block_count", f.get_int("llama.block_count"), 4096);
  p.d_model = positive(f, "llama.embedding_length", f.get_int("llama.embedding_length"), int64_t(1) << 20);
  p.d_mlp = positive(f, "llama.feed_forward_length", f.get_int("llama.feed_forward_length"), int64_t(1) << 22);
  p.n_heads = positive(f, "llama.attention.head_count", f.get_int("llama.attention.head_count"), p.d_model);
  if (const GgufValue* v = f.find("llama.attention.head_count_kv"); v && v->is_array())
    user_error(f.path() + ": metadata 'llama.attention.head_count_kv' varies by layer, which is not supported");
  p.n_kv_heads = positive(f, "llama.attention.head_count_kv",
                          f.get_int_opt("llama.attention.head_count_kv").value_or(p.n_heads), p.n_heads);
  if (p.n_heads % p.n_kv_heads != 0)
    user_error(f.path() + ": llama.attention.head_count " + std::to_string(p.n_heads) +
               " is not a multiple of llama.attention.head_count_kv " + std::to_string(p.n_kv_heads));
  if (!f.find("llama.attention.key_length") && p.d_model % p.n_heads != 0)
    user_error(f.path() + ": llama.embedding_length " + std::to_string(p.d_model) +
               " is not a multiple of llama.attention.head_count " + std::to_string(p.n_heads) +
               " and llama.attention.key_length is absent");
  p.head_dim = positive(f, "llama.attention.key_length",
                        f.get_int_opt("llama.attention.key_length").value_or(p.d_model / p.n_heads), 1 << 16);
  if (const auto vl = f.get_int_opt("llama.attention.value_length"); vl && *vl != p.head_dim)
    user_error(f.path() + ": llama.attention.value_length " + std::to_string(*vl) + " differs from the key length " +
               std::to_string(p.head_dim) + " (not supported)");
  if (p.head_dim % 2 != 0) user_error(f.path() + ": head dimension " + std::to_string(p.head_dim) + " is odd (RoPE needs pairs)");
  p.context_length = positive(f, "llama.context_length", f.get_int("llama.context_length"), int64_t(1) << 24);
  p.rope_dim = f.get_int_opt("llama.rope.dimension_count").value_or(p.head_dim);
  if (p.rope_dim != p.head_dim)
    user_error(f.path() + ": llama.rope.dimension_count " + std::to_string(p.rope_dim) + " differs from the head dimension " +
               std::to_string(p.head_dim) + " (partial rotary is not supported for llama GGUF files)");
  p.rope_theta = f.get_float_opt("llama.rope.freq_base").value_or(10000.0);
  p.rms_eps = f.get_float_opt("llama.attention.layer_norm_rms_epsilon").value_or(1e-5);
  if (!(p.rope_theta > 0) || !std::isfinite(p.rope_theta))
    user_error(f.path() + ": llama.rope.freq_base must be a positive number");
  if (!(p.rms_eps > 0) || !std::isfinite(p.rms_eps))
    user_error(f.path() + ": llama.attention.layer_norm_rms_epsilon must be a positive number");

  p.rope_scaling = f.get_string_opt("llama.rope.scaling.type").value_or("none");
  if (const auto old = f.get_float_opt("llama.rope.scale_linear"); old && p.rope_scaling == "none" && *old != 1.0) {
    p.rope_scaling = "linear";
    p.rope_scaling_factor = *old;
  }
  if (p.rope_scaling == "linear")
    p.rope_scaling_factor = f.get_float_opt("llama.rope.scaling.factor").value_or(p.rope_scaling_factor);
  else if (p.rope_scaling != "none")
    user_error(f.path() + ": llama.rope.scaling.type '" + p.rope_scaling + "' is not supported (none, linear)");
  if (!(p.rope_scaling_factor > 0) || !std::isfinite(p.rope_scaling_factor))
    user_error(f.path() + ": the RoPE scaling factor must be a positive number");
  if (f.find_tensor("rope_freqs.weight"))
    user_error(f.path() + ": has a rope_freqs tensor (Llama 3 RoPE scaling), which is not supported for GGUF files");

  p.vocab_size = tensor_rows(f, "token_embd.weight");
  if (const auto v = f.get_int_opt("llama.vocab_size"); v && *v != p.vocab_size)
    user_error(f.path() + ": llama.vocab_size " + std::to_string(*v) + " differs from token_embd's " +
               std::to_string(p.vocab_size) + " rows");
  p.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  return p;
}

GgufTokenizerData read_gguf_tokenizer(const GgufFile& f) {
  GgufTokenizerData t;
  t.model = f.get_string("tokenizer.ggml.model");
  t.pre = f.get_string_opt("tokenizer.ggml.pre").value_or("");
  t.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const int64_t n = int64_t(t.tokens.size());
  if (n == 0) user_error(f.path() + ": metadata 'tokenizer.ggml.tokens' is empty");
  if (f.find("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = f.get_int_array("tokenizer.ggml.token_type");
    if (int64_t(types.size()) != n)
      user_error(f.path() + ": tokenizer.ggml.token_type has " + std::to_string(types.size()) + " entries for " +
                 std::to_string(n) + " tokens");
    for (int64_t ty : types) {
      if (ty < 0 || ty > int64_t(GgufTokenType::Byte))
        user_error(f.path() + ": tokenizer.ggml.token_type holds " + std::to_string(ty) + " (token types are 0-6)");
      t.token_types.push_back(int32_t(ty));
    }
  } else {
    t.token_types.assign(size_t(n), int32_t(GgufTokenType::Normal));
  }
  if (f.find("tokenizer.ggml.merges")) t.merges = f.get_string_array("tokenizer.ggml.merges");
  if (f.find("tokenizer.ggml.scores")) {
    for (double s : f.get_float_array("tokenizer.ggml.scores")) t.scores.push_back(float(s));
    if (int64_t(t.scores.size()) != n)
      user_error(f.path() + ": tokenizer.ggml.scores has " + std::to_string(t.scores.size()) + " entries for " +
                 std::to_string(n) + " tokens");
  }
  const auto id = [&](const std::string& key) -> int64_t {
    const auto v = f.get_int_opt(key);
    if (!v) return -1;
    if (*v < 0 || *v >= n)
      user_error(f.path() + ": metadata '" + key + "' is " + std::to_string(*v) + ", not a token id (0.." +
                 std::to_string(n - 1) + ")");
    return *v;
  };
  t.bos = id("tokenizer.ggml.bos_token_id");
  t.eos = id("tokenizer.ggml.eos_token_id");
  t.unk = id("tokenizer.ggml.unknown_token_id");
  t.pad = id("tokenizer.ggml.padding_token_id");
  // llama.cpp's defaults: SentencePiece vocabularies add BOS, BPE ones do not; the keys override.
  t.add_bos = f.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(t.model == "llama");
  t.add_eos = f.get_bool_opt("tokenizer.ggml.add_eos_token").value_or(false);
  return t;
}

}  // namespace saepipe
