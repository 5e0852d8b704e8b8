// What differs between the decoder-only families, as data: one plain struct that the generic
// decoder (decoder.hpp) runs from. It is filled from a Hugging Face config.json here; another
// source of metadata (a GGUF file's key/values) can fill the same struct.
//
// Families (model_type): gpt2, gpt_neox, llama, mistral, qwen2, qwen3, gemma2, gemma3_text.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace saepipe {

enum class NormType { LayerNorm, RmsNorm };
enum class Activation { GeluTanh, GeluExact, Silu };

// One rotary embedding (Hugging Face's rope_parameters for one layer type).
struct RopeSpec {
  std::string type = "default";  // default, linear, llama3
  double theta = 10000;
  double factor = 1;                                  // linear, llama3
  double low_freq_factor = 1, high_freq_factor = 4;   // llama3
  int64_t original_max_positions = 0;                 // llama3
  // The inverse frequencies of the rotary_dim / 2 pairs, as transformers computes them (fp32).
  std::vector<float> inverse_frequencies(int64_t rotary_dim) const;
};

struct DecoderConfig {
  std::string model_type;
  int64_t d_model = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, d_mlp = 0;
  int64_t vocab_size = 0, n_positions = 0;
  int64_t bos_token = -1, eos_token = -1;  // -1: none

  // Norms. Every block has a norm before attention (ln1) and before the MLP (ln2); Gemma 2/3 also
  // normalise what each sublayer adds to the residual (post_sublayer_norms).
  NormType norm = NormType::LayerNorm;
  double norm_eps = 1e-5;
  bool norm_bias = false;         // LayerNorm with a bias
  bool norm_unit_offset = false;  // Gemma: x_hat * (1 + w)
  bool post_sublayer_norms = false;
  bool qk_norm = false;           // RMSNorm over head_dim on q and k before RoPE (Qwen3, Gemma 3)

  // Attention: q = n_heads x head_dim, k and v = n_kv_heads x head_dim.
  bool qkv_bias = false, out_bias = false;
  bool learned_positions = false;  // else rotary
  int64_t rotary_dim = 0;          // leading dims of each head that rotate (partial rotary: < head_dim)
  RopeSpec rope_global, rope_local;  // full-attention and sliding-window layers
  int64_t sliding_window = 0;        // keys t - window < u <= t on local layers
  std::vector<uint8_t> local_layer;  // [n_layers]: 1 = sliding-window layer
  double attn_scale = 1;             // scores = (q . k) * attn_scale
  double attn_softcap = 0;           // scores = c tanh(scores / c) when > 0
  double final_softcap = 0;          // logits = c tanh(logits / c) when > 0

  // MLP: down(act(up(x))) or, gated, down(act(gate(x)) * up(x)).
  bool gated_mlp = false;
  Activation activation = Activation::GeluTanh;
  bool mlp_bias = false;

  bool parallel_residual = false;  // x + attn(ln1(x)) + mlp(ln2(x)) (GPT-NeoX)
  float embed_scale = 1;           // Gemma: sqrt(d_model), applied in fp32 (the compute dtype)
  bool tied_embeddings = true;

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // Checks that the fields are consistent (user error naming `where`).
  void validate(const std::string& where) const;
  // The fields, for the store's manifest and the model's describe().
  nlohmann::json to_json() const;
};

// The model types supported, for messages: "gpt2, gpt_neox, llama, ...".
const char* supported_model_types();

// From a config.json object; `where` names the file. User error, one line naming the field, for
// a missing or invalid field, an unsupported model_type, rope type, activation or layer type.
DecoderConfig decoder_config_from_hf(const nlohmann::json& j, const std::string& where);

// model_dir/config.json, read and checked as above.
DecoderConfig read_decoder_config(const std::string& model_dir);

}  // namespace saepipe
