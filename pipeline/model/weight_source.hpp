// Where the decoder's weights come from: logical tensor names in, fp32 tensors out, each checked
// against the shape the config implies. The decoder (decoder.hpp) names only logical tensors, so
// a new container (GGUF, with its own names, quantised blocks and llama.cpp's Q/K row order)
// slots in as another WeightSource without touching the forward pass.
//
// Logical names and shapes (PyTorch nn.Linear layout: weight [out, in]; RoPE in Hugging Face's
// rotate-half order; norm weights as Hugging Face stores them, Gemma's w of x_hat * (1 + w)):
//   embed.weight [V, D]                 pos_embed.weight [P, D]         (learned positions only)
//   blocks.L.ln1.weight|bias [D]        norm before attention
//   blocks.L.attn.q.weight [Hq*hd, D] (+ .bias)    attn.k / attn.v.weight [Hkv*hd, D] (+ .bias)
//   blocks.L.attn.o.weight [D, Hq*hd] (+ .bias [D])
//   blocks.L.attn.q_norm.weight, attn.k_norm.weight [hd]
//   blocks.L.ln_attn_out.weight [D]     norm of what attention adds (Gemma 2/3)
//   blocks.L.ln2.weight|bias [D]        norm before the MLP
//   blocks.L.mlp.gate.weight [I, D]     gated MLPs only
//   blocks.L.mlp.up.weight [I, D] (+ .bias)        blocks.L.mlp.down.weight [D, I] (+ .bias)
//   blocks.L.ln_mlp_out.weight [D]      norm of what the MLP adds (Gemma 2/3)
//   ln_final.weight|bias [D]            unembed.weight [V, D] (untied models only)
//
// Shape legend: V vocab, P positions, D d_model, Hq / Hkv query / key-value heads, hd head_dim,
// I MLP width.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Tensor `name` as fp32, row-major; user error naming the container's file and tensor when it
  // is missing, or its shape is not `shape` (what the config implies) or its dtype unreadable.
  virtual std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const = 0;
  // Rows [rows[i]] of the 2-D tensor `name` ([n_rows, cols], checked as load does) into
  // out [count, cols]: an embedding lookup without converting the whole table.
  virtual void load_rows(const std::string& name, const std::vector<int64_t>& shape, const int32_t* rows,
                         int64_t count, float* out) const = 0;
  // A short text identifying the weights' content layout (for the store's fingerprint).
  virtual std::string identity() const = 0;
};

struct DecoderConfig;

// A Hugging Face directory's safetensors (model.safetensors or shards listed by
// model.safetensors.index.json), memory-mapped, with each family's key names as
// save_pretrained writes them (with or without the "model." / "transformer." / "gpt_neox."
// prefix) and its fused tensors (GPT-2's Conv1D c_attn, GPT-NeoX's per-head query_key_value)
// split into the logical q, k, v.
std::shared_ptr<const WeightSource> open_hf_weights(const std::string& model_dir, const DecoderConfig& cfg);

}  // namespace saepipe
