// Synthetic stores: the decoder against the true feature directions. For each true feature the
// best decoder cosine (MMCS = their mean; recovered@t = the fraction with best >= t), and for
// each latent the true feature of highest cosine. A zero row of gt (a feature absent from this
// hook) is left out of the MMCS and the fractions.
#pragma once
#include <cstdint>
#include <vector>

namespace saepipe {

struct GroundTruthMatch {
  double mmcs = 0, frac_09 = 0, frac_099 = 0;
  int64_t n_present = 0;  // true features with a non-zero direction
  std::vector<int64_t> latent_best;  // [F]
  std::vector<float> latent_cos;     // [F]
  std::vector<float> feature_best;   // [G] each true feature's best cosine; -2 when absent
};

// gt [G, D] true features; W_dec [F, D]. Blocked over the true features.
GroundTruthMatch match_ground_truth(const std::vector<float>& gt, int64_t G, const float* W_dec, int64_t F, int64_t D);
// mmcs and the fractions from feature_best and n_present (latent shards: after each true
// feature's best is taken over every shard's latents).
void summarise_ground_truth_match(GroundTruthMatch& m);

}  // namespace saepipe
