// Resampling of dead latents (Anthropic, "Towards Monosemanticity"): each dead latent gets a
// new direction from an input the SAE reconstructs badly, and starts its optimiser state
// afresh. The caller chooses the inputs (with probability proportional to the squared
// reconstruction error, identically on every rank); this file only rewrites the parameters.
//
// Shape legend: D d_in, F d_sae, R resampled latents.  inputs [R,D] (encoder inputs x - b_dec).
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/sae/sae.hpp"

namespace saepipe {

// For latent latents[r]: W_dec row = inputs[r] / ||inputs[r]|| (times the mean decoder norm of
// the live latents when decoders are not unit-norm), W_encT row = the same direction times
// 0.2 * mean encoder-row norm of the live latents, b_enc = 0, and the Adam moments of those
// parameters zeroed. A zero input row leaves its latent alone.
void resample_latents(SaeParams& p, AdamState& adam, const std::vector<int32_t>& latents, const float* inputs,
                      const std::vector<uint8_t>& dead);

// The same in pieces, for a step that holds one latent range (latent sharding):
// float64 row norms of p's latents, enc [p.d_sae] (W_encT rows) and dec [p.d_sae] (W_dec rows);
void latent_row_norms(const SaeParams& p, double* enc, double* dec);
// the scales from every latent's norms [F] in latent order (summed in that order: any split of
// the latents gives the same scales), 0.2 x the live latents' mean encoder norm and their mean
// decoder norm;
struct ResampleScales {
  double enc = 0.2, dec = 1.0;
};
ResampleScales resample_scales(const double* enc, const double* dec, const std::vector<uint8_t>& dead);
// the rewrite of the latents that p holds, [first, first + p.d_sae) (the others are skipped;
// inputs [R,D] as above, one row per entry of `latents`).
void resample_rows(SaeParams& p, AdamState& adam, const std::vector<int32_t>& latents, const float* inputs,
                   int64_t first, ResampleScales scales);

// Index i of the first prefix sum of weights exceeding u * total (u in [0,1)): sampling with
// probability proportional to the (non-negative) weights.
int64_t sample_proportional(const std::vector<double>& prefix, double u);

}  // namespace saepipe
