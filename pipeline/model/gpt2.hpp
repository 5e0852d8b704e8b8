// GPT-2's config for the CUDA GPT-2 model (kernels/cuda); on the CPU, GPT-2 runs on the generic
// decoder (decoder.hpp). Model type "gpt2": gpt2, distilgpt2, gpt2-medium/large/xl, from a
// Hugging Face directory: config.json + safetensors. Weights use HF names (wte, wpe, h.{i}.ln_1, attn.c_attn,
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

// What the CUDA GPT-2 (Gpt2CudaModel in cuda/gpt2.hpp) answers from its config.
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

}  // namespace saepipe
