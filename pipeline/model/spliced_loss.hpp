// Next-token loss with an SAE spliced into the model ("CE loss recovered", as SAELens and
// SAEBench compute it): the full model runs three ways on the same tokens —
//   clean:   unchanged;
//   spliced: the activation at the hook replaced by the SAE's reconstruction of it;
//   zero:    the activation at the hook set to 0 (zero ablation)
// — and the replaced value flows on through the rest of the model (TransformerLens semantics;
// every hook kind at any layer: hook_embed, hook_pos_embed, blocks.L.hook_resid_pre|mid|post,
// blocks.L.hook_attn_out|mlp_out, ln_final.hook_normalized). Results are sums, not means, so
// that ranks can allreduce them.
//
// Shape legend: B sequences, T positions, N = B*T rows, D d_model, V vocab.
#pragma once
#include <cstdint>

#include "pipeline/model/transformer.hpp"

namespace saepipe {

struct SplicedLossSums {
  // Sums over the predictions of -log p(next token), nats.
  double clean_loss = 0, spliced_loss = 0, zero_loss = 0;
  // Sums over every position (all B*T: each has a next-token distribution, as SAELens averages
  // it) of KL(clean || spliced) and KL(clean || zero), nats.
  double kl_spliced = 0, kl_zero = 0;
  int64_t n_predictions = 0, n_positions = 0;

  SplicedLossSums& operator+=(const SplicedLossSums& o);
  // SAEBench's scores (1 = the SAE loses nothing, 0 = as bad as zero ablation):
  //   ce_loss_score = (zero_loss - spliced_loss) / (zero_loss - clean_loss)
  //   kl_div_score  = (kl_zero - kl_spliced) / kl_zero
  // NaN when the denominator is 0.
  double ce_loss_score() const;
  double kl_div_score() const;
};

// tokens [B,T] (ids < vocab_size, 1 <= T <= n_positions). Predictions: positions 0..T-2 of each
// sequence, the target being the next token (B*(T-1) of them); KL is summed over all B*T
// positions. reconstruct(acts, N) overwrites acts [N, D] — what the hook sees, row b*T + t for
// position t of sequence b — with the SAE's reconstruction; to leave some positions alone (BOS,
// say) it leaves their rows as they are.
//
// m must be full (load_transformer_full). Memory: the forward pass's buffers for N rows, six
// [N, D] copies of the residual stream, and logits for 3 x 64 predictions at a time — never
// [N, V]. Parallel over OpenMP threads; hold a SingleThreadedBlas (blas_threads.hpp) around
// calls. The sums do not depend on the thread count.
SplicedLossSums spliced_loss(const TransformerModel& m, const int32_t* tokens, int64_t B, int64_t T,
                             const HookPoint& hook, const ActivationEdit& reconstruct);

}  // namespace saepipe
