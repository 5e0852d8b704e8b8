// The stats stage's outputs: features.h5 (per-latent statistics), examples.h5 (activating
// examples with their contexts) and summary.json. Layouts: schemas/stats.schema.json.
//
// Shape legend: F d_sae, Q quantile levels, H histogram bins, K neighbours, L logit tokens,
// E examples per latent in a set, C context tokens per example.
// Every [F, ...] array is row-major with the latent index first.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace saepipe {

struct FeatureStats {
  int64_t n_tokens = 0, d_sae = 0;
  std::vector<int64_t> fire_count;       // [F] tokens with activation > 0
  std::vector<double> density;           // [F] fire_count / n_tokens
  std::vector<double> log10_density;     // [F] log10(density), -10 for dead latents
  std::vector<float> max_activation;     // [F]
  std::vector<float> mean_activation;    // [F] mean of the non-zero activations
  std::vector<uint8_t> dead;             // [F] never fired on the held-out tokens
  std::vector<uint8_t> dense;            // [F] density > dense_threshold
  std::vector<uint8_t> ultralow;         // [F] 0 < density < ultralow_threshold
  double dense_threshold = 0.1, ultralow_threshold = 1e-5;

  // Quantiles of the non-zero activations of each latent, read off a fine histogram of
  // kFineBins bins over (0, max_activation]: exact to one fine bin (max_activation / kFineBins).
  std::vector<double> quantile_levels;   // [Q]
  std::vector<float> quantiles;          // [F, Q]; 0 for dead latents
  // Histogram of the non-zero activations: H equal bins over (0, max_activation[f]].
  int64_t hist_bins = 0;                 // H
  std::vector<int64_t> hist_counts;      // [F, H]

  // Histogram of log10_density over the live latents (dead ones are counted in dead[]).
  std::vector<double> density_hist_edges;   // [B + 1]
  std::vector<int64_t> density_hist_counts; // [B]

  // Decoder neighbours: the K latents of highest decoder cosine (self excluded), best first.
  int64_t n_neighbours = 0;              // K
  std::vector<int32_t> neighbour_index;  // [F, K]
  std::vector<float> neighbour_cosine;   // [F, K]

  // Synthetic stores only (else empty): the true feature of highest decoder cosine.
  std::vector<int64_t> gt_match_index;   // [F]
  std::vector<float> gt_match_cosine;    // [F]

  // Crosscoders only (else n_layers = 0, empty): the norm of each latent's decoder block per hook.
  int64_t n_layers = 0;                      // L
  std::vector<float> decoder_norm_per_layer; // [F, L]

  // With a model only (else n_logit_tokens = 0, arrays empty): direct logit effect of each
  // decoder row, W_dec[f] . diag(ln_final.w) . W_U (the final LayerNorm's scale folded in, its
  // centering applied to the row, its normalisation by the token's norm ignored).
  int64_t n_logit_tokens = 0;            // L
  std::vector<int32_t> logit_top_ids;    // [F, L] highest effect first
  std::vector<float> logit_top_values;   // [F, L]
  std::vector<int32_t> logit_bottom_ids; // [F, L] lowest effect first
  std::vector<float> logit_bottom_values;// [F, L]
  std::vector<int64_t> logit_hist_counts;// [F, H] over [logit_hist_lo, logit_hist_hi] per latent
  std::vector<float> logit_hist_lo, logit_hist_hi;  // [F]
};

// One set of examples per latent (the top activations, or the interval samples). Slot e of
// latent f is at [f * E + e]; unused slots have row -1. Contexts: C = before + 1 + after
// tokens around the example's row, cut at the sequence's edges (token -1 there); ctx_acts is
// the latent's activation on each context token (the example token at index `before`).
struct ExampleSet {
  int64_t per_feature = 0;               // E
  std::vector<int64_t> row;              // [F, E] global token index in the store, -1 = empty
  std::vector<float> activation;         // [F, E]
  std::vector<int32_t> ctx_tokens;       // [F, E, C]
  std::vector<float> ctx_acts;           // [F, E, C]
};

struct FeatureExamples {
  int64_t d_sae = 0;
  int64_t context_before = 0, context_after = 0;  // C = before + 1 + after
  ExampleSet top;                        // best first; ties broken by lower row
  // Interval samples: interval_bins equal bins of (0, max_activation[f]]; up to
  // interval_per_bin examples per bin (bin b occupies slots [b * per_bin, (b+1) * per_bin)),
  // lowest bin first, picked by a hash of (seed, row) so that the choice does not depend on
  // the number of ranks.
  int64_t interval_bins = 0, interval_per_bin = 0;
  ExampleSet interval;                   // E = interval_bins * interval_per_bin
  int64_t context() const { return context_before + 1 + context_after; }
};

// Atomic: written under a temporary name and renamed.
void write_feature_stats(const std::string& path, const FeatureStats& s, const std::string& resolved_job);
FeatureStats read_feature_stats(const std::string& path);
void write_feature_examples(const std::string& path, const FeatureExamples& e, const std::string& resolved_job);
FeatureExamples read_feature_examples(const std::string& path);

}  // namespace saepipe
