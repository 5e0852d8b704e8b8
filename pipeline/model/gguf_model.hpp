// A llama.cpp GGUF file of architecture "llama" as a model for the generic decoder: its `llama.*`
// metadata as a DecoderConfig and its tensors, dequantized to fp32, as a WeightSource under the
// decoder's logical names:
//   token_embd.weight -> embed.weight           output_norm.weight -> ln_final.weight
//   output.weight     -> unembed.weight (absent: tied to token_embd)
//   blk.L.attn_norm / attn_q / attn_k / attn_v / attn_output / ffn_norm / ffn_gate / ffn_up /
//   ffn_down -> blocks.L.ln1 / attn.q / attn.k / attn.v / attn.o / ln2 / mlp.gate / mlp.up / mlp.down
// llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the rows of each
// head of attn_q and attn_k from Hugging Face's rotate-half layout (first half, second half) to
// interleaved pairs (row 2i + s holds Hugging Face's row s·hd/2 + i); loading undoes it, so the
// decoder runs the model exactly as transformers does from the same file.
#pragma once
#include <memory>
#include <string>

#include "pipeline/model/decoder_config.hpp"
#include "pipeline/model/gguf.hpp"
#include "pipeline/model/weight_source.hpp"

namespace saepipe {

// A path that names a GGUF model: a file ending in ".gguf".
bool is_gguf_model_path(const std::string& path);

// model_type "llama": RMSNorm, SwiGLU, RoPE (rotate-half, theta llama.rope.freq_base, linear
// scaling when the file says so) over the whole head, GQA; BOS/EOS from tokenizer.ggml.*.
DecoderConfig decoder_config_from_gguf(const GgufFile& file);

std::shared_ptr<const WeightSource> open_gguf_weights(std::shared_ptr<const GgufFile> file, const DecoderConfig& cfg);

// Undoes llama.cpp's Q/K row permutation in place: w holds n_heads heads of head_dim rows of
// `cols` values each (a weight [n_heads*head_dim, cols], or a bias with cols = 1).
void unpermute_llama_qk_rows(float* w, int64_t n_heads, int64_t head_dim, int64_t cols);

}  // namespace saepipe
