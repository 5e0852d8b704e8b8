// The model interface the harvest and stats drive, and TransformerLens hook names. The CPU
// implementation is the generic decoder (decoder.hpp: every family as data); token ids in, the
// requested hook activations (or the final normalised residual, for the logits) out.
//
// Shape legend: B sequences, T positions, N = B*T rows, D d_model, V vocab.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

enum class HookKind { Embed, PosEmbed, ResidPre, ResidMid, ResidPost, AttnOut, MlpOut, LnFinalNormalized };

// A parsed hook name: hook_embed, hook_pos_embed, blocks.L.hook_resid_pre|hook_resid_mid|
// hook_resid_post|hook_attn_out|hook_mlp_out, ln_final.hook_normalized. What each means per
// family: README.md, "Model families and hooks".
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

// Changes, in place, the activation a hook sees: acts [rows, D] (rows = B*T, row b*T + t is
// position t of sequence b). An empty function leaves it as it is.
using ActivationEdit = std::function<void(float* acts, int64_t rows)>;

// The final norm's affine map: final(x) = normalize(x) * weight (+ bias), normalize being
// LayerNorm's (x - mean) / std or RMSNorm's x / rms. weight already holds Gemma's 1 + w.
struct FinalNorm {
  bool rms = false;
  const float* weight = nullptr;  // [D]; nullptr unless the model is full
  const float* bias = nullptr;    // [D] or nullptr (none)
};

class TransformerModel {
 public:
  virtual ~TransformerModel() = default;
  virtual std::string family() const = 0;  // the config's model_type: "gpt2", "llama", ...
  virtual std::string device() const { return "cpu"; }  // where forward() computes
  virtual int64_t d_model() const = 0;
  virtual int64_t n_layers() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t n_positions() const = 0;
  virtual int64_t bos_token() const = 0;  // -1: the model has none
  virtual int64_t eos_token() const = 0;  // -1: the model has none
  // A short JSON-compatible summary of the architecture (for the store's manifest).
  virtual std::string describe() const = 0;
  // Identifies the weights' files (names, sizes, safetensors headers): part of the store's
  // fingerprint, so shards from other weights are never reused.
  const std::string& weights_identity() const { return weights_identity_; }
  // The hook `name` of this model: parse_hook, then the family's own rules (no hook_pos_embed
  // without learned positions, no hook_resid_mid with a parallel residual): user error otherwise.
  virtual HookPoint hook(const std::string& name) const { return parse_hook(name, n_layers()); }

  // tokens [B,T] (ids < vocab_size, T <= n_positions). out[h] receives [B*T, D] for hooks[h];
  // only the blocks the hooks need are run. Parallel over OpenMP threads; hold a
  // SingleThreadedBlas (blas_threads.hpp) around calls for speed.
  virtual void forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                       const std::vector<float*>& out) const = 0;

  // forward() over n_batches batches of up to max_batch sequences: fill(i, tokens) writes batch
  // i's tokens [B_i, T] and returns B_i; use(i, out) receives its activations (out[h] [B_i*T, D],
  // valid during the call), in batch order. A device model overlaps batch i's copy back with
  // batch i+1's pass; the default calls forward() on each batch in turn.
  using BatchTokens = std::function<int64_t(int64_t i, int32_t* tokens)>;
  using BatchActivations = std::function<void(int64_t i, const std::vector<const float*>& out)>;
  virtual void forward_batches(int64_t n_batches, int64_t max_batch, int64_t T, const std::vector<HookPoint>& hooks,
                               const BatchTokens& fill, const BatchActivations& use) const;

  // ---- the whole model, to the logits (needs load_transformer_full) ----

  // Every block, the final norm and the unembedding are loaded.
  virtual bool is_full() const = 0;
  // The unembedding as V rows of D: logit[v] = dot(final(x), unembedding()[v]), i.e. W_U^T
  // (tied models: the token embeddings; no bias). nullptr unless is_full() (the CUDA GPT-2:
  // always).
  virtual const float* unembedding() const = 0;  // [V, D]
  virtual FinalNorm final_norm() const = 0;
  // Logits are c tanh(logits / c) when c > 0 (Gemma 2); 0: none. unembed() applies it.
  virtual float final_logit_softcap() const { return 0; }

  // Runs the whole model once per edit, with the activation at `hook` replaced as TransformerLens
  // does: edits[e] may overwrite what the hook sees (acts [N, D]) and the result flows on through
  // the rest of the model. final[e] receives [N, D], the output of the final norm (after its
  // weight and bias), ready for the unembedding. The model before the hook runs once for all
  // edits, so bits before the hook are shared and an identity (or empty) edit reproduces the
  // clean run exactly. Every hook kind is supported, at any layer. Parallel like forward().
  virtual void forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                             const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const = 0;

 protected:
  std::string weights_identity_;
};

// Reads model_dir/config.json and the weights the hooks need (the blocks up to the last hooked
// one; no unembedding), or the same from a llama.cpp GGUF file when model_dir names one
// (*.gguf, gguf_model.hpp); user error naming the file for an unsupported model_type or config
// value, a missing or misshapen tensor, or a hook the model does not have.
std::unique_ptr<TransformerModel> load_transformer(const std::string& model_dir,
                                                   const std::vector<std::string>& hook_names);

// Every block, the final norm and the unembedding (is_full()): for forward_final, spliced_loss
// (spliced_loss.hpp) and logit_effects (logit_effects.hpp). Same errors as load_transformer.
std::unique_ptr<TransformerModel> load_transformer_full(const std::string& model_dir);

}  // namespace saepipe
