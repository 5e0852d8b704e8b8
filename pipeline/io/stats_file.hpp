// features.h5 and summary.json of the stats stage (layout: schemas/stats.schema.json).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace saepipe {

struct FeatureStats {
  int64_t n_tokens = 0, d_sae = 0;
  std::vector<int64_t> fire_count;       // [F]
  std::vector<double> density;           // [F] fire_count / n_tokens
  std::vector<double> log10_density;     // [F] log10(density), -inf written as -10 for dead
  std::vector<float> max_activation;     // [F]
  std::vector<float> mean_activation;    // [F] mean of the non-zero activations
  std::vector<uint8_t> dead;             // [F] never fired on the held-out tokens
  std::vector<int64_t> gt_match_index;   // [F] synthetic stores only (else empty)
  std::vector<float> gt_match_cosine;    // [F]
};

// Atomic: written under a temporary name and renamed.
void write_feature_stats(const std::string& path, const FeatureStats& s, const std::string& resolved_job);
FeatureStats read_feature_stats(const std::string& path);

}  // namespace saepipe
