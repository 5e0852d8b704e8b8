// GPT-2 family (model_type "gpt2": gpt2, distilgpt2, gpt2-medium/large/xl) from a Hugging Face
// directory: config.json + safetensors. Weights use HF names (wte, wpe, h.{i}.ln_1, attn.c_attn,
// attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f; with or without a "transformer." prefix) and
// the Conv1D layout: a linear map's weight is [in, out], so y = x W + b.
//
// Shape legend: B sequences, T positions, C d_model, H heads, hs = C/H, V vocab, P n_positions.
#pragma once
#include <nlohmann/json.hpp>

#include "pipeline/model/transformer.hpp"

namespace saepipe {

class Checkpoint;

struct Gpt2Config {
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_positions = 0, vocab_size = 0, n_inner = 0;
  int64_t bos_token_id = 50256, eos_token_id = 50256;
  double layer_norm_epsilon = 1e-5;
  bool gelu_tanh = true;  // activation_function gelu_new / gelu_pytorch_tanh; false: exact gelu
  bool scale_attn_weights = true;

  // From config.json's object; `where` names the file. User error for missing or invalid fields
  // and for options this implementation does not support.
  static Gpt2Config from_json(const nlohmann::json& j, const std::string& where);
};

// model_dir/config.json, checked: user error naming the file when it is missing or not JSON, or
// its model_type is not gpt2 (the only family so far).
Gpt2Config read_model_config(const std::string& model_dir);

// What every GPT-2 implementation (Gpt2Model here, Gpt2CudaModel in cuda/gpt2.hpp) answers
// from its config.
class Gpt2Base : public TransformerModel {
 public:
  std::string family() const override { return "gpt2"; }
  int64_t d_model() const override { return cfg_.n_embd; }
  int64_t n_layers() const override { return cfg_.n_layer; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t n_positions() const override { return cfg_.n_positions; }
  int64_t bos_token() const override { return cfg_.bos_token_id; }
  int64_t eos_token() const override { return cfg_.eos_token_id; }
  std::string describe() const override { return config_json().dump(); }

 protected:
  explicit Gpt2Base(const Gpt2Config& cfg) : cfg_(cfg) {}
  // The config.json fields the forward pass honours.
  nlohmann::json config_json() const;

  Gpt2Config cfg_;
};

class Gpt2Model final : public Gpt2Base {
 public:
  // Loads blocks [0, n_blocks) and, when with_ln_f, the final LayerNorm.
  Gpt2Model(const Gpt2Config& cfg, const Checkpoint& ckpt, int64_t n_blocks, bool with_ln_f);

  void forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
               const std::vector<float*>& out) const override;

  bool is_full() const override { return int64_t(blocks_.size()) == cfg_.n_layer && !lnf_w_.empty(); }
  const float* unembedding() const override { return wte_.data(); }  // tied: wte [V,C]
  const float* ln_final_weight() const override { return lnf_w_.empty() ? nullptr : lnf_w_.data(); }
  const float* ln_final_bias() const override { return lnf_b_.empty() ? nullptr : lnf_b_.data(); }
  void forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                     const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const override;

 private:
  struct Block {
    std::vector<float> ln1_w, ln1_b;      // [C]
    std::vector<float> attn_w, attn_b;    // [C,3C], [3C]
    std::vector<float> proj_w, proj_b;    // [C,C], [C]
    std::vector<float> ln2_w, ln2_b;      // [C]
    std::vector<float> fc_w, fc_b;        // [C,I], [I]  (I = n_inner, 4C by default)
    std::vector<float> fc_proj_w, fc_proj_b;  // [I,C], [C]
  };
  struct Scratch;  // per-pass buffers (gpt2.cpp)

  // tok [N,C] = wte[tokens], pos [N,C] = wpe[t].
  void embed(const int32_t* tokens, int64_t B, int64_t T, float* tok, float* pos) const;
  // out [N,C] = attention sublayer of block l on x [N,C] (hook_attn_out).
  void attn_out(int64_t l, const float* x, int64_t B, int64_t T, Scratch& s, float* out) const;
  // out [N,C] = MLP sublayer of block l on x [N,C] (hook_mlp_out).
  void mlp_out(int64_t l, const float* x, int64_t N, Scratch& s, float* out) const;
  // x [N,C] through blocks [l0, l1), in place.
  void run_blocks(int64_t l0, int64_t l1, float* x, int64_t B, int64_t T, Scratch& s) const;

  std::vector<float> wte_, wpe_;  // [V,C], [P,C]
  std::vector<Block> blocks_;
  std::vector<float> lnf_w_, lnf_b_;
};

}  // namespace saepipe
