// The model interface the harvest drives, and TransformerLens hook names. One implementation
// per architecture family (gpt2.hpp now; GPT-NeoX and Llama fit the same interface: token ids
// in, the requested hook activations out).
//
// Shape legend: B sequences, T positions, D d_model.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

enum class HookKind { Embed, PosEmbed, ResidPre, ResidMid, ResidPost, AttnOut, MlpOut, LnFinalNormalized };

// A parsed hook name: hook_embed, hook_pos_embed, blocks.L.hook_resid_pre|hook_resid_mid|
// hook_resid_post|hook_attn_out|hook_mlp_out, ln_final.hook_normalized.
struct HookPoint {
  HookKind kind = HookKind::ResidPost;
  int64_t layer = -1;  // -1 for hooks outside the blocks
  std::string name;
};

// User error naming the hook (and the valid forms, or the layer range) when it is not one of
// the above or its layer is not in [0, n_layers).
HookPoint parse_hook(const std::string& name, int64_t n_layers);

// Blocks that must run to produce every hook: last needed layer + 1 (n_layers for ln_final).
int64_t layers_needed(const std::vector<HookPoint>& hooks, int64_t n_layers);

class TransformerModel {
 public:
  virtual ~TransformerModel() = default;
  virtual std::string family() const = 0;  // "gpt2"
  virtual int64_t d_model() const = 0;
  virtual int64_t n_layers() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t n_positions() const = 0;
  virtual int64_t bos_token() const = 0;
  virtual int64_t eos_token() const = 0;
  // A short JSON-compatible summary of the architecture (for the store's manifest).
  virtual std::string describe() const = 0;
  // Identifies the weights' files (names, sizes, safetensors headers): part of the store's
  // fingerprint, so shards from other weights are never reused.
  const std::string& weights_identity() const { return weights_identity_; }

  // tokens [B,T] (ids < vocab_size, T <= n_positions). out[h] receives [B*T, D] for hooks[h];
  // only the blocks the hooks need are run. Parallel over OpenMP threads; hold a
  // SingleThreadedBlas (blas_threads.hpp) around calls for speed.
  virtual void forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                       const std::vector<float*>& out) const = 0;

 protected:
  std::string weights_identity_;
};

// Reads model_dir/config.json and the weights the hooks need; user error naming the file for an
// unsupported model_type, a missing or misshapen tensor, or a hook the model does not have.
std::unique_ptr<TransformerModel> load_transformer(const std::string& model_dir,
                                                   const std::vector<std::string>& hook_names);

}  // namespace saepipe
