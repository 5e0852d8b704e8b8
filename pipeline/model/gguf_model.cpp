#include "pipeline/model/gguf_model.hpp"


#include <cmath>
#include <cstring>
#include <map>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/ggml_types.hpp"
#include "pipeline/model/gguf_llama.hpp"

namespace saepipe {

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// The decoder's logical name -> llama.cpp's tensor name (gguf-py's TENSOR_NAMES for LLAMA).
std::string gguf_tensor_name(const std::string& path, const std::string& logical) {
  static const std::map<std::string, std::string> top = {
      {"embed.weight", "token_embd.weight"}, {"ln_final.weight", "output_norm.weight"}, {"unembed.weight", "output.weight"}};
  static const std::map<std::string, std::string> block = {
      {"ln1.weight", "attn_norm.weight"},     {"attn.q.weight", "attn_q.weight"},   {"attn.q.bias", "attn_q.bias"},
      {"attn.k.weight", "attn_k.weight"},     {"attn.k.bias", "attn_k.bias"},       {"attn.v.weight", "attn_v.weight"},
      {"attn.v.bias", "attn_v.bias"},         {"attn.o.weight", "attn_output.weight"}, {"attn.o.bias", "attn_output.bias"},
      {"ln2.weight", "ffn_norm.weight"},      {"mlp.gate.weight", "ffn_gate.weight"}, {"mlp.up.weight", "ffn_up.weight"},
      {"mlp.down.weight", "ffn_down.weight"}};
  if (auto it = top.find(logical); it != top.end()) return it->second;
  if (logical.rfind("blocks.", 0) == 0) {
    const size_t dot = logical.find('.', 7);
    if (dot != std::string::npos)
      if (auto it = block.find(logical.substr(dot + 1)); it != block.end())
        return "blk." + logical.substr(7, dot - 7) + "." + it->second;
  }
  user_error(path + ": a llama GGUF file has no tensor for the decoder's " + logical);
}

class GgufWeights final : public WeightSource {
 public:
  GgufWeights(std::shared_ptr<const GgufFile> f, const DecoderConfig& cfg)
      : f_(std::move(f)), n_heads_(cfg.n_heads), n_kv_heads_(cfg.n_kv_heads), head_dim_(cfg.head_dim) {}

  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const override {
    std::vector<float> w = f_->load(gguf_tensor_name(f_->path(), name), shape);
    // Q and K rows come back to Hugging Face's rotate-half order (the converter permuted them
    // with the query and the key-value head counts respectively).
    const bool q = ends_with(name, ".attn.q.weight") || ends_with(name, ".attn.q.bias");
    const bool k = ends_with(name, ".attn.k.weight") || ends_with(name, ".attn.k.bias");
    if (q || k) {
      const int64_t heads = q ? n_heads_ : n_kv_heads_;
      if (shape.empty() || shape[0] != heads * head_dim_)
        internal_error("GGUF Q/K tensor " + name + " of shape " + shape_text(shape) + " for " + std::to_string(heads) +
                       " heads of " + std::to_string(head_dim_));
      unpermute_llama_qk_rows(w.data(), heads, head_dim_, shape.size() == 2 ? shape[1] : 1);
    }
    return w;
  }

  void load_rows(const std::string& name, const std::vector<int64_t>& shape, const int32_t* rows, int64_t count,
                 float* out) const override {
    const std::string gname = gguf_tensor_name(f_->path(), name);
    const GgufTensorInfo* t = f_->find_tensor(gname);
    if (!t) user_error(f_->path() + ": lacks tensor '" + gname + "'");
    if (t->shape() != shape || shape.size() != 2)
      user_error(f_->path() + ": tensor '" + gname + "' has shape " + shape_text(t->shape()) +
                 ", the model's metadata implies " + shape_text(shape));
    const GgmlTypeInfo ti = ggml_type_info(t->type);
    if (!ti.dequantizable)
      user_error(f_->path() + ": tensor '" + gname + "' has type " + ggml_type_name(t->type) +
                 ", which cannot be read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
    // A row is a whole number of blocks (checked when the file was opened): dequantize only the
    // rows asked for.
    const int64_t cols = shape[1], row_bytes = cols / ti.block * ti.bytes;
    for (int64_t i = 0; i < count; ++i) {
      SAE_ASSERT(rows[i] >= 0 && rows[i] < shape[0], "GgufWeights::load_rows: row out of range");
      dequantize_ggml(t->type, f_->tensor_data(*t) + int64_t(rows[i]) * row_bytes, cols, out + i * cols);
    }
  }

  std::string identity() const override { return "gguf:" + f_->identity(); }

 private:
  static bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  std::shared_ptr<const GgufFile> f_;
  int64_t n_heads_, n_kv_heads_, head_dim_;
};

}  // namespace

bool is_gguf_model_path(const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

void unpermute_llama_qk_rows(float* w, int64_t n_heads, int64_t head_dim, int64_t cols) {
  const int64_t half = head_dim / 2;
  std::vector<float> head(size_t(head_dim * cols));
  for (int64_t h = 0; h < n_heads; ++h) {
    float* base = w + h * head_dim * cols;
    std::memcpy(head.data(), base, head.size() * sizeof(float));
    // GGUF row 2i + s  ->  Hugging Face row s * half + i
    for (int64_t i = 0; i < half; ++i)
      for (int64_t s = 0; s < 2; ++s)
        std::memcpy(base + (s * half + i) * cols, head.data() + (2 * i + s) * cols, size_t(cols) * sizeof(float));
  }
}

DecoderConfig decoder_config_from_gguf(const GgufFile& f) {
  const GgufLlamaParams p = read_llama_params(f);
  const GgufTokenizerData tok = read_gguf_tokenizer(f);
  if (int64_t(tok.tokens.size()) != p.vocab_size)
    user_error(f.path() + ": tokenizer.ggml.tokens lists " + std::to_string(tok.tokens.size()) +
               " tokens, token_embd has " + std::to_string(p.vocab_size) + " rows");
  DecoderConfig c;
  c.model_type = "llama";
  c.d_model = p.d_model;
  c.n_layers = p.n_layers;
  c.n_heads = p.n_heads;
  c.n_kv_heads = p.n_kv_heads;
  c.head_dim = p.head_dim;
  c.d_mlp = p.d_mlp;
  c.vocab_size = p.vocab_size;
  c.n_positions = p.context_length;
  c.bos_token = tok.bos;
  c.eos_token = tok.eos;
  c.norm = NormType::RmsNorm;
  c.norm_eps = p.rms_eps;
  c.gated_mlp = true;
  c.activation = Activation::Silu;
  c.rotary_dim = p.rope_dim;
  c.rope_global.type = p.rope_scaling == "linear" ? "linear" : "default";
  c.rope_global.theta = p.rope_theta;
  c.rope_global.factor = p.rope_scaling_factor;
  c.rope_local = c.rope_global;
  c.local_layer.assign(size_t(c.n_layers), 0);
  c.attn_scale = 1.0 / std::sqrt(double(c.head_dim));
  c.tied_embeddings = p.tied_embeddings;
  c.validate(f.path());
  return c;
}

std::shared_ptr<const WeightSource> open_gguf_weights(std::shared_ptr<const GgufFile> file, const DecoderConfig& cfg) {
  return std::make_shared<GgufWeights>(std::move(file), cfg);
}

}  // namespace saepipe
