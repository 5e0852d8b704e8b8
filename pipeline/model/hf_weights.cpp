// Logical tensor names (weight_source.hpp) -> Hugging Face safetensors keys, per family:
//   llama, mistral, qwen2, qwen3, gemma2, gemma3_text: [model.]embed_tokens, layers.L.input_layernorm,
//     self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm, post_attention_layernorm (Llama-style: the
//     norm before the MLP; Gemma: the norm of attention's output), pre_feedforward_layernorm,
//     post_feedforward_layernorm (Gemma), mlp.{gate,up,down}_proj, norm; lm_head.
//   gpt_neox: [gpt_neox.]embed_in, layers.L.input_layernorm, post_attention_layernorm,
//     attention.query_key_value (fused, per head [q | k | v] rows), attention.dense,
//     mlp.dense_h_to_4h, mlp.dense_4h_to_h, final_layer_norm; embed_out.
//   gpt2: [transformer.]wte, wpe, h.L.ln_1, attn.c_attn (Conv1D [in, out], columns [q | k | v]),
//     attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f; lm_head.
#include <algorithm>
#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/decoder_config.hpp"
#include "pipeline/model/safetensors.hpp"
#include "pipeline/model/weight_source.hpp"

namespace saepipe {

namespace {

// A logical name split as blocks.L.<rest>, or a top-level name (layer -1).
struct Logical {
  int64_t layer = -1;
  std::string rest;
};

Logical split(const std::string& name) {
  Logical l;
  if (name.rfind("blocks.", 0) == 0) {
    const size_t dot = name.find('.', 7);
    l.layer = std::stoll(name.substr(7, dot - 7));
    l.rest = name.substr(dot + 1);
  } else {
    l.rest = name;
  }
  return l;
}

// out [cols, rows] = in [rows, cols]^T.
std::vector<float> transpose(const std::vector<float>& in, int64_t rows, int64_t cols) {
  std::vector<float> out(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(c * rows + r)] = in[size_t(r * cols + c)];
  return out;
}

class HfWeights final : public WeightSource {
 public:
  HfWeights(const std::string& dir, const DecoderConfig& cfg) : ck_(dir), cfg_(cfg) {
    const std::string& t = cfg.model_type;
    if (t == "gpt2") {
      family_ = Family::Gpt2;
      prefix_ = ck_.has("transformer.wte.weight") ? "transformer." : "";
    } else if (t == "gpt_neox") {
      family_ = Family::NeoX;
      prefix_ = ck_.has("gpt_neox.embed_in.weight") ? "gpt_neox." : "";
    } else {
      family_ = Family::Llama;
      prefix_ = ck_.has("model.embed_tokens.weight") ? "model." : "";
    }
    gemma_ = t == "gemma2" || t == "gemma3_text";
  }

  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const override {
    const Logical l = split(name);
    if (family_ == Family::Gpt2) {
      if (l.rest.rfind("attn.q.", 0) == 0 || l.rest.rfind("attn.k.", 0) == 0 || l.rest.rfind("attn.v.", 0) == 0)
        return gpt2_qkv(l, shape);
      const std::string key = map(name, l);
      if (conv1d(l.rest)) {  // stored [in, out]
        SAE_ASSERT(shape.size() == 2, "linear weights are 2-D");
        return transpose(ck_.load(key, {shape[1], shape[0]}), shape[1], shape[0]);
      }
      return ck_.load(key, shape);
    }
    if (family_ == Family::NeoX &&
        (l.rest.rfind("attn.q.", 0) == 0 || l.rest.rfind("attn.k.", 0) == 0 || l.rest.rfind("attn.v.", 0) == 0))
      return neox_qkv(l, shape);
    return ck_.load(map(name, l), shape);
  }

  void load_rows(const std::string& name, const std::vector<int64_t>& shape, const int32_t* rows, int64_t count,
                 float* out) const override {
    ck_.load_rows(map(name, split(name)), shape, rows, count, out);
  }

  std::string identity() const override { return ck_.identity(); }

 private:
  enum class Family { Gpt2, NeoX, Llama };

  static bool conv1d(const std::string& rest) {
    return rest == "attn.o.weight" || rest == "mlp.up.weight" || rest == "mlp.down.weight";
  }

  std::string block(int64_t layer) const {
    return prefix_ + (family_ == Family::Gpt2 ? "h." : "layers.") + std::to_string(layer) + ".";
  }

  // The Hugging Face key of a logical tensor that maps to one stored tensor.
  std::string map(const std::string& name, const Logical& l) const {
    static const std::pair<const char*, const char*> gpt2_top[] = {
        {"embed.weight", "wte.weight"}, {"pos_embed.weight", "wpe.weight"},
        {"ln_final.weight", "ln_f.weight"}, {"ln_final.bias", "ln_f.bias"}};
    static const std::pair<const char*, const char*> gpt2_block[] = {
        {"ln1.weight", "ln_1.weight"}, {"ln1.bias", "ln_1.bias"}, {"ln2.weight", "ln_2.weight"},
        {"ln2.bias", "ln_2.bias"}, {"attn.o.weight", "attn.c_proj.weight"}, {"attn.o.bias", "attn.c_proj.bias"},
        {"mlp.up.weight", "mlp.c_fc.weight"}, {"mlp.up.bias", "mlp.c_fc.bias"},
        {"mlp.down.weight", "mlp.c_proj.weight"}, {"mlp.down.bias", "mlp.c_proj.bias"}};
    static const std::pair<const char*, const char*> neox_top[] = {
        {"embed.weight", "embed_in.weight"}, {"ln_final.weight", "final_layer_norm.weight"},
        {"ln_final.bias", "final_layer_norm.bias"}};
    static const std::pair<const char*, const char*> neox_block[] = {
        {"ln1.weight", "input_layernorm.weight"}, {"ln1.bias", "input_layernorm.bias"},
        {"ln2.weight", "post_attention_layernorm.weight"}, {"ln2.bias", "post_attention_layernorm.bias"},
        {"attn.o.weight", "attention.dense.weight"}, {"attn.o.bias", "attention.dense.bias"},
        {"mlp.up.weight", "mlp.dense_h_to_4h.weight"}, {"mlp.up.bias", "mlp.dense_h_to_4h.bias"},
        {"mlp.down.weight", "mlp.dense_4h_to_h.weight"}, {"mlp.down.bias", "mlp.dense_4h_to_h.bias"}};
    static const std::pair<const char*, const char*> llama_top[] = {
        {"embed.weight", "embed_tokens.weight"}, {"ln_final.weight", "norm.weight"}};
    static const std::pair<const char*, const char*> llama_block[] = {
        {"ln1.weight", "input_layernorm.weight"}, {"ln2.weight", "post_attention_layernorm.weight"},
        {"attn.q.weight", "self_attn.q_proj.weight"}, {"attn.q.bias", "self_attn.q_proj.bias"},
        {"attn.k.weight", "self_attn.k_proj.weight"}, {"attn.k.bias", "self_attn.k_proj.bias"},
        {"attn.v.weight", "self_attn.v_proj.weight"}, {"attn.v.bias", "self_attn.v_proj.bias"},
        {"attn.o.weight", "self_attn.o_proj.weight"}, {"attn.o.bias", "self_attn.o_proj.bias"},
        {"attn.q_norm.weight", "self_attn.q_norm.weight"}, {"attn.k_norm.weight", "self_attn.k_norm.weight"},
        {"mlp.gate.weight", "mlp.gate_proj.weight"}, {"mlp.gate.bias", "mlp.gate_proj.bias"},
        {"mlp.up.weight", "mlp.up_proj.weight"}, {"mlp.up.bias", "mlp.up_proj.bias"},
        {"mlp.down.weight", "mlp.down_proj.weight"}, {"mlp.down.bias", "mlp.down_proj.bias"}};
    static const std::pair<const char*, const char*> gemma_block[] = {
        {"ln_attn_out.weight", "post_attention_layernorm.weight"}, {"ln2.weight", "pre_feedforward_layernorm.weight"},
        {"ln_mlp_out.weight", "post_feedforward_layernorm.weight"}};

    if (name == "unembed.weight") return family_ == Family::NeoX ? "embed_out.weight" : "lm_head.weight";
    auto find = [&](auto& table) -> const char* {
      for (auto& [a, b] : table)
        if (l.rest == a) return b;
      return nullptr;
    };
    const char* key = nullptr;
    if (l.layer < 0) {
      key = family_ == Family::Gpt2 ? find(gpt2_top) : family_ == Family::NeoX ? find(neox_top) : find(llama_top);
      if (key) return prefix_ + key;
    } else {
      if (gemma_) key = find(gemma_block);
      if (!key) key = family_ == Family::Gpt2 ? find(gpt2_block) : family_ == Family::NeoX ? find(neox_block) : find(llama_block);
      if (key) return block(l.layer) + key;
    }
    internal_error("no " + cfg_.model_type + " tensor for the logical name " + name);
  }

  // GPT-2's c_attn: Conv1D weight [D, 3D] (columns q | k | v) and bias [3D].
  std::vector<float> gpt2_qkv(const Logical& l, const std::vector<int64_t>& shape) const {
    const int64_t D = cfg_.d_model, part = l.rest[5] == 'q' ? 0 : l.rest[5] == 'k' ? 1 : 2;
    const bool bias = l.rest.size() > 7 && l.rest.substr(7) == "bias";
    const std::string key = block(l.layer) + (bias ? "attn.c_attn.bias" : "attn.c_attn.weight");
    if (bias) {
      const std::vector<float> b = ck_.load(key, {3 * D});
      SAE_ASSERT(shape == std::vector<int64_t>{D}, "q/k/v bias shape");
      return std::vector<float>(b.begin() + part * D, b.begin() + (part + 1) * D);
    }
    SAE_ASSERT((shape == std::vector<int64_t>{D, D}), "q/k/v weight shape");
    const std::vector<float> w = ck_.load(key, {D, 3 * D});
    std::vector<float> out(size_t(D * D));  // [out, in]
    for (int64_t i = 0; i < D; ++i)
      for (int64_t o = 0; o < D; ++o) out[size_t(o * D + i)] = w[size_t(i * 3 * D + part * D + o)];
    return out;
  }

  // GPT-NeoX's query_key_value: Linear weight [3D, D] whose rows are, head by head, q | k | v.
  std::vector<float> neox_qkv(const Logical& l, const std::vector<int64_t>& shape) const {
    const int64_t D = cfg_.d_model, H = cfg_.n_heads, hd = cfg_.head_dim;
    const int64_t part = l.rest[5] == 'q' ? 0 : l.rest[5] == 'k' ? 1 : 2;
    const bool bias = l.rest.size() > 7 && l.rest.substr(7) == "bias";
    const std::string key = block(l.layer) + (bias ? "attention.query_key_value.bias" : "attention.query_key_value.weight");
    const int64_t cols = bias ? 1 : D;
    SAE_ASSERT(shape[0] == H * hd && (bias || shape[1] == D), "q/k/v shape");
    const std::vector<float> w = bias ? ck_.load(key, {3 * H * hd}) : ck_.load(key, {3 * H * hd, D});
    std::vector<float> out(size_t(H * hd * cols));
    for (int64_t h = 0; h < H; ++h)
      std::memcpy(out.data() + h * hd * cols, w.data() + (h * 3 + part) * hd * cols, size_t(hd * cols) * sizeof(float));
    return out;
  }

  Checkpoint ck_;
  DecoderConfig cfg_;
  Family family_;
  bool gemma_ = false;
  std::string prefix_;
};

}  // namespace

std::shared_ptr<const WeightSource> open_hf_weights(const std::string& model_dir, const DecoderConfig& cfg) {
  return std::make_shared<HfWeights>(model_dir, cfg);
}

}  // namespace saepipe
