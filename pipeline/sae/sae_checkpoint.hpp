// Between trained parameters and the checkpoint contract (DESIGN.md "SAE checkpoint"): the
// trainer works on inputs scaled by `input_scale` (x' = s x); the checkpoint is in raw units.
// Folding keeps z in raw units and the decoder rows as trained:
//   W_enc, W_dec unchanged; b_enc /= s; b_dec /= s; threshold = theta / s
// (gated: b_mag /= s, r_mag unchanged; skip transcoders: W_skip unchanged)
// so pre_raw = pre' / s and x_hat_raw = x_hat' / s exactly in real arithmetic. A transcoder's
// input and target are scaled by the same s (the input's), so the same folding holds.
#pragma once
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/sae/sae.hpp"

namespace saepipe {

// Weights and /threshold of the checkpoint; `threshold_scaled` is batchtopk's inference
// threshold (in scaled units), used only for that architecture (jumprelu takes exp(log_threshold)).
// Other fields of the checkpoint are left for the caller.
SaeCheckpoint sae_to_checkpoint(const SaeParams& p, Architecture a, double input_scale, double threshold_scaled);

// The parameters of a checkpoint (log_threshold = log(threshold); a 0 threshold gives -inf,
// i.e. every positive pre-activation passes).
SaeParams sae_params_from_checkpoint(const SaeCheckpoint& c);

// How to encode with a checkpoint: batchtopk and jumprelu select by the saved threshold
// (JumpReLU), topk by k, relu by sign. AuxK off. An unknown architecture is a user error.
SaeConfig sae_inference_config(const SaeCheckpoint& c);

}  // namespace saepipe
