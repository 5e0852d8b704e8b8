// The CUDA generic decoder (pipeline/model/cuda/decoder.hpp) against the CPU decoder
// (pipeline/model/decoder.hpp, itself checked against transformers by e2e_model_families) at
// every hook, for a config of each family's kind: GQA + llama3 rope, MQA + sliding window,
// Gemma 2 (post norms, (1 + w), soft-capping, head_dim 256, alternating windows), Qwen3 (q/k
// norm, biases), GPT-NeoX (LayerNorm with bias, partial rotary, parallel residual) and GPT-2
// (learned positions). Random weights through a WeightSource made here. fp32: within 1e-4 of
// the largest value; bf16 matmul inputs: within 3e-2. forward_final (stats' CE splicing) at
// every hook with the edits spliced_loss makes (none, a change, zero) against the CPU's.
// Skips without a device.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "pipeline/model/cuda/decoder.hpp"
#include "tests/gpu/cuda_test_util.hpp"

namespace saepipe::test {
namespace {

// Deterministic random tensors of any requested shape, by name: norms near 1 (Gemma: near 0,
// applied as 1 + w), biases small, matrices scaled by 1 / sqrt(fan_in), embeddings N(0, 1).
class RandomWeights final : public WeightSource {
 public:
  explicit RandomWeights(bool unit_offset) : unit_offset_(unit_offset) {}
  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const override {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::mt19937_64 rng(std::hash<std::string>{}(name));
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    const bool norm = name.find("norm") != std::string::npos || name.find("ln") != std::string::npos;
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool embed = name.find("embed") != std::string::npos;
    for (float& x : v) {
      const float r = g(rng);
      if (bias) x = 0.1f * r;
      else if (norm) x = (unit_offset_ ? 0.0f : 1.0f) + 0.1f * r;
      else if (embed) x = r;
      else x = r / std::sqrt(float(shape.back()));
    }
    return v;
  }
  void load_rows(const std::string& name, const std::vector<int64_t>& shape, const int32_t* rows, int64_t count,
                 float* out) const override {
    const std::vector<float> all = load(name, shape);
    for (int64_t i = 0; i < count; ++i)
      std::memcpy(out + i * shape[1], all.data() + int64_t(rows[i]) * shape[1], size_t(shape[1]) * sizeof(float));
  }
  std::string identity() const override { return "random"; }

 private:
  bool unit_offset_;
};

DecoderConfig base(const std::string& type, int64_t d, int64_t heads, int64_t kv, int64_t hd) {
  DecoderConfig c;
  c.model_type = type;
  c.d_model = d, c.n_layers = 2, c.n_heads = heads, c.n_kv_heads = kv, c.head_dim = hd, c.d_mlp = 96;
  c.vocab_size = 100, c.n_positions = 64, c.bos_token = 1, c.eos_token = 2;
  c.norm = NormType::RmsNorm, c.norm_eps = 1e-6, c.gated_mlp = true, c.activation = Activation::Silu;
  c.rotary_dim = hd, c.attn_scale = 1.0 / std::sqrt(double(hd)), c.tied_embeddings = false;
  c.local_layer.assign(2, 0);
  return c;
}

std::vector<DecoderConfig> configs() {
  std::vector<DecoderConfig> out;
  DecoderConfig llama = base("llama", 64, 4, 2, 32);
  llama.rope_global.type = "llama3", llama.rope_global.factor = 8, llama.rope_global.original_max_positions = 16;
  llama.rope_local = llama.rope_global;
  out.push_back(llama);
  DecoderConfig mistral = base("mistral", 48, 4, 1, 12);
  mistral.sliding_window = 5, mistral.local_layer = {1, 1};
  out.push_back(mistral);
  DecoderConfig gemma = base("gemma2", 64, 2, 1, 256);
  gemma.norm_unit_offset = true, gemma.post_sublayer_norms = true, gemma.activation = Activation::GeluTanh;
  gemma.attn_softcap = 5, gemma.final_softcap = 3, gemma.embed_scale = 8, gemma.attn_scale = 1.0 / std::sqrt(24.0);
  gemma.sliding_window = 5, gemma.local_layer = {1, 0}, gemma.rope_local.theta = 100;
  out.push_back(gemma);
  DecoderConfig qwen = base("qwen3", 32, 4, 2, 16);
  qwen.qk_norm = true, qwen.qkv_bias = qwen.out_bias = true;
  out.push_back(qwen);
  DecoderConfig neox = base("gpt_neox", 32, 2, 2, 16);
  neox.norm = NormType::LayerNorm, neox.norm_bias = true, neox.norm_eps = 1e-5, neox.gated_mlp = false;
  neox.activation = Activation::GeluExact, neox.qkv_bias = neox.out_bias = neox.mlp_bias = true;
  neox.rotary_dim = 8, neox.parallel_residual = true;
  out.push_back(neox);
  DecoderConfig gpt2 = base("gpt2", 32, 4, 4, 8);
  gpt2.norm = NormType::LayerNorm, gpt2.norm_bias = true, gpt2.norm_eps = 1e-5, gpt2.gated_mlp = false;
  gpt2.activation = Activation::GeluTanh, gpt2.qkv_bias = gpt2.out_bias = gpt2.mlp_bias = true;
  gpt2.learned_positions = true, gpt2.tied_embeddings = true;
  out.push_back(gpt2);
  return out;
}

class CudaDecoder : public CudaStreamTest {};

TEST_F(CudaDecoder, EveryFamilyMatchesTheCpuDecoderAtEveryHook) {
  const int64_t B = 2, T = 24;
  std::mt19937 rng(5);
  std::vector<int32_t> tok(static_cast<size_t>(B * T));
  for (int32_t& t : tok) t = int32_t(rng() % 100);
  for (const DecoderConfig& c : configs()) {
    c.validate(c.model_type);
    std::vector<std::string> names = {"hook_embed"};
    if (c.learned_positions) names.push_back("hook_pos_embed");
    for (int64_t l = 0; l < 2; ++l)
      for (const char* k : {"hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"})
        if (!(c.parallel_residual && std::string(k) == "hook_resid_mid"))
          names.push_back("blocks." + std::to_string(l) + "." + k);
    names.push_back("ln_final.hook_normalized");
    const DecoderModel cpu(c, std::make_shared<RandomWeights>(c.norm_unit_offset), 2, false);
    std::vector<HookPoint> hooks;
    for (const auto& n : names) hooks.push_back(cpu.hook(n));
    const int64_t ND = B * T * c.d_model;
    std::vector<std::vector<float>> want(names.size(), std::vector<float>(size_t(ND)));
    std::vector<float*> wp;
    for (auto& w : want) wp.push_back(w.data());
    cpu.forward(tok.data(), B, T, hooks, wp);
    for (auto [precision, tol] : {std::pair{cuda::ActType::F32, 1e-4}, {cuda::ActType::BF16, 3e-2}}) {
      const cuda::DecoderCudaModel gpu(cpu, precision);
      std::vector<std::vector<float>> got(names.size(), std::vector<float>(size_t(ND)));
      std::vector<float*> gp;
      for (auto& g : got) gp.push_back(g.data());
      gpu.forward(tok.data(), B, T, hooks, gp);
      for (size_t h = 0; h < names.size(); ++h) {
        double mx = 0, err = 0;
        for (int64_t i = 0; i < ND; ++i)
          mx = std::max(mx, double(std::abs(want[h][size_t(i)]))),
          err = std::max(err, double(std::abs(want[h][size_t(i)] - got[h][size_t(i)])));
        EXPECT_LE(err, tol * mx) << c.model_type << " " << cuda::to_string(precision) << " " << names[h];
      }
    }
  }
}

TEST_F(CudaDecoder, EveryFamilyForwardFinalMatchesTheCpuDecoderAtEveryHook) {
  const int64_t B = 2, T = 16;
  std::mt19937 rng(9);
  std::vector<int32_t> tok(static_cast<size_t>(B * T));
  for (int32_t& t : tok) t = int32_t(rng() % 100);
  for (const DecoderConfig& c : configs()) {
    c.validate(c.model_type);
    const auto weights = std::make_shared<RandomWeights>(c.norm_unit_offset);
    const DecoderModel cpu(c, weights, c.n_layers, true);
    const cuda::DecoderCudaModel gpu(std::make_unique<const DecoderModel>(c, weights, c.n_layers, true),
                                     cuda::ActType::F32);
    ASSERT_TRUE(gpu.is_full());
    ASSERT_EQ(gpu.final_logit_softcap(), cpu.final_logit_softcap());
    ASSERT_NE(gpu.unembedding(), nullptr);
    std::vector<std::string> names = {"hook_embed"};
    if (c.learned_positions) names.push_back("hook_pos_embed");
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (const char* k : {"hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"})
        if (!(c.parallel_residual && std::string(k) == "hook_resid_mid"))
          names.push_back("blocks." + std::to_string(l) + "." + k);
    names.push_back("ln_final.hook_normalized");
    const int64_t ND = B * T * c.d_model;
    // The clean run, a change that depends on the row and the value, and zero.
    const ActivationEdit change = [&](float* acts, int64_t rows) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < c.d_model; ++k) acts[r * c.d_model + k] = 0.5f * acts[r * c.d_model + k] + 0.01f * float(r % 7);
    };
    const ActivationEdit zero = [&](float* acts, int64_t rows) { std::fill(acts, acts + rows * c.d_model, 0.0f); };
    const std::vector<ActivationEdit> edits = {ActivationEdit(), change, zero};
    for (const std::string& name : names) {
      const HookPoint hook = cpu.hook(name);
      std::vector<std::vector<float>> want(3, std::vector<float>(size_t(ND), NAN)), got = want;
      std::vector<float*> wp, gp;
      for (size_t e = 0; e < 3; ++e) wp.push_back(want[e].data()), gp.push_back(got[e].data());
      cpu.forward_final(tok.data(), B, T, hook, edits, wp);
      gpu.forward_final(tok.data(), B, T, hook, edits, gp);
      for (size_t e = 0; e < 3; ++e) {
        double mx = 0, err = 0;
        for (int64_t i = 0; i < ND; ++i) {
          ASSERT_FALSE(std::isnan(got[e][size_t(i)])) << c.model_type << " " << name << " edit " << e;
          mx = std::max(mx, double(std::abs(want[e][size_t(i)])));
          err = std::max(err, double(std::abs(want[e][size_t(i)] - got[e][size_t(i)])));
        }
        EXPECT_LE(err, 1e-4 * mx) << c.model_type << " " << name << " edit " << e;
      }
    }
  }
}

}  // namespace
}  // namespace saepipe::test
