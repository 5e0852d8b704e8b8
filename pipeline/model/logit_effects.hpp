// Direct logit effects of SAE decoder rows: how much writing one unit of latent f into the
// residual stream at the end of the model moves each token's logit.
//
//   effect[f, v] = softcap((centre(W_dec[f]) * final_norm.weight) . W_U[:, v])
//
// where centre(u) = u - mean(u) for a LayerNorm and u itself for an RMSNorm. The final norm is
// treated as follows: a LayerNorm's centering is applied to the direction (it is linear), the
// norm's weight (Gemma's 1 + w) is folded in elementwise, its bias is dropped (it does not
// depend on the direction), and its division by each token's scale is ignored (it depends on
// the token, not the latent) — the usual "direct logit attribution" of a decoder row. softcap
// is the model's final logit soft-capping c tanh(e / c) (Gemma 2; monotone, so the top and
// bottom tokens are those of the raw effects), the identity for the others.
// W_U = unembedding()^T (tied models: the token embeddings^T).
//
// Shape legend: F latents, D d_model, V vocab, L tokens kept at each end, H histogram bins.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/model/transformer.hpp"

namespace saepipe {

// Field names as in FeatureStats (pipeline/io/stats_file.hpp), so they can be moved there.
struct LogitEffects {
  int64_t n_logit_tokens = 0;             // L
  int64_t hist_bins = 0;                  // H
  std::vector<int32_t> logit_top_ids;     // [F, L] highest effect first; ties: lower id first
  std::vector<float> logit_top_values;    // [F, L]
  std::vector<int32_t> logit_bottom_ids;  // [F, L] lowest effect first; ties: lower id first
  std::vector<float> logit_bottom_values; // [F, L]
  // H equal bins over [lo, hi] = [min, max] of the row's V effects: effect e goes to bin
  // floor((e - lo) * (H / (hi - lo))) computed in double, the maximum to bin H-1; all V in
  // bin 0 when lo == hi. Each row sums to V.
  std::vector<int64_t> logit_hist_counts; // [F, H]
  std::vector<float> logit_hist_lo, logit_hist_hi;  // [F]
};

// W_dec [F, D] (D = m.d_model()); 1 <= L <= vocab_size, H >= 1. Needs a full model
// (load_transformer_full). To split latents over ranks, pass W_dec + f0 * D and a count: rows
// of `out` are then local. Latents go in blocks of 64, one sgemm per block over vocabulary
// slices (unembed.hpp): memory O(64 * V), not O(F * V). Parallel over OpenMP threads; hold a
// SingleThreadedBlas (blas_threads.hpp) around calls. Corrupt error (exit 3) when a row's
// effects are not finite.
void logit_effects(const TransformerModel& m, const float* W_dec, int64_t F, int64_t D, int64_t L, int64_t H,
                   LogitEffects& out);

}  // namespace saepipe
