// The generic decoder-only transformer on the CPU: one forward pass for every family, the
// differences read from a DecoderConfig (decoder_config.hpp), the weights from a WeightSource
// (weight_source.hpp), converted to fp32 layer by layer when loaded. Follows Hugging Face
// transformers' modelling code in fp32; hooks follow TransformerLens.
//
// Shape legend: B sequences, T positions, N = B*T rows, D d_model, Q = Hq*hd query width,
// KV = Hkv*hd key/value width, I MLP width, V vocab.
#pragma once
#include <memory>

#include "pipeline/model/decoder_config.hpp"
#include "pipeline/model/transformer.hpp"
#include "pipeline/model/weight_source.hpp"

namespace saepipe {

// One block's weights as the forward pass uses them (fp32): fused, transposed to [in, out],
// Gemma's 1 + w folded into the norm weights. The CUDA decoder uploads these.
struct DecoderLayerWeights {
  std::vector<float> ln1_w, ln1_b, ln2_w, ln2_b;  // [D]
  std::vector<float> post_attn_w, post_mlp_w;     // [D], Gemma 2/3
  std::vector<float> q_norm, k_norm;              // [hd], Qwen3 / Gemma 3
  std::vector<float> w_qkv, b_qkv;                // [D, Q + 2 KV], [Q + 2 KV]
  std::vector<float> w_o, b_o;                    // [Q, D], [D]
  std::vector<float> w_in, b_in;                  // [D, I] or, gated, [D, 2I] (gate | up)
  std::vector<float> w_out, b_out;                // [I, D], [D]
};

// Hook `name` of a model with this config (TransformerModel::hook's rules), before loading it.
HookPoint decoder_hook(const DecoderConfig& cfg, const std::string& name);

class DecoderModel final : public TransformerModel {
 public:
  // Loads blocks [0, n_blocks) and, when `full`, the final norm and the unembedding as well.
  DecoderModel(const DecoderConfig& cfg, std::shared_ptr<const WeightSource> weights, int64_t n_blocks, bool full);

  const DecoderConfig& config() const { return cfg_; }
  std::string family() const override { return cfg_.model_type; }
  int64_t d_model() const override { return cfg_.d_model; }
  int64_t n_layers() const override { return cfg_.n_layers; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t n_positions() const override { return cfg_.n_positions; }
  int64_t bos_token() const override { return cfg_.bos_token; }
  int64_t eos_token() const override { return cfg_.eos_token; }
  std::string describe() const override { return cfg_.to_json().dump(); }
  HookPoint hook(const std::string& name) const override { return decoder_hook(cfg_, name); }

  void forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
               const std::vector<float*>& out) const override;

  bool is_full() const override { return full_; }
  const float* unembedding() const override { return unembed_.empty() ? nullptr : unembed_.data(); }
  FinalNorm final_norm() const override;
  float final_logit_softcap() const override { return float(cfg_.final_softcap); }
  void forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                     const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const override;

  // What the CUDA decoder uploads.
  const std::vector<DecoderLayerWeights>& layer_weights() const { return layers_; }
  const std::vector<float>& position_embeddings() const { return pos_; }  // [P,D] or empty
  const std::vector<float>& inverse_frequencies(bool local) const { return local ? inv_freq_local_ : inv_freq_global_; }
  const WeightSource& weights() const { return *weights_; }

 private:
  using Layer = DecoderLayerWeights;
  struct Scratch;  // per-pass buffers (decoder.cpp)

  Layer load_layer(int64_t l) const;
  // tok [N,D] = embeddings of tokens (times embed_scale); pos [N,D] = learned positions (or 0).
  void embed(const int32_t* tokens, int64_t B, int64_t T, float* tok, float* pos) const;
  // out [N,D] = what block l's attention adds to the residual stream (hook_attn_out).
  void attn_out(int64_t l, const float* x, int64_t B, int64_t T, Scratch& s, float* out) const;
  // out [N,D] = what block l's MLP adds to the residual stream (hook_mlp_out); x is its input
  // (the residual after attention, or before it with a parallel residual).
  void mlp_out(int64_t l, const float* x, int64_t N, Scratch& s, float* out) const;
  // x [N,D] through blocks [l0, l1), in place.
  void run_blocks(int64_t l0, int64_t l1, float* x, int64_t B, int64_t T, Scratch& s) const;

  DecoderConfig cfg_;
  std::shared_ptr<const WeightSource> weights_;
  std::vector<float> pos_;  // [P,D], learned positions only (token embeddings are looked up row by row)
  std::vector<Layer> layers_;
  std::vector<float> lnf_w_, lnf_b_;  // [D] when full
  std::vector<float> unembed_;        // [V,D] when full
  std::vector<float> inv_freq_global_, inv_freq_local_;  // [rd/2]
  bool full_ = false;
};

// load_transformer and load_transformer_full (transformer.hpp; a Hugging Face directory or a
// GGUF file, same errors) as the DecoderModel they make: the CUDA decoder uploads its weights.
std::unique_ptr<DecoderModel> load_decoder(const std::string& model, const std::vector<std::string>& hook_names);
std::unique_ptr<DecoderModel> load_decoder_full(const std::string& model);

}  // namespace saepipe
