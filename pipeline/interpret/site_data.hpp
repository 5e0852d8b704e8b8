// What the interpret stage renders: the stats stage's outputs (summary.json, features.h5 and,
// when present, examples.h5) plus the token vocabulary, checked once so that the renderers can
// index every array without further checks.
//
// Shape legend: F d_sae, Q quantile levels, H histogram bins, K neighbours, L logit tokens,
// E examples per latent, C context tokens.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/interpret/token_text.hpp"
#include "pipeline/io/stats_file.hpp"

namespace saepipe {

struct SiteData {
  std::string run_name;         // shown in titles
  nlohmann::json summary;       // summary.json as read
  FeatureStats stats;
  bool has_examples = false;    // examples.h5 was present
  FeatureExamples examples;
  TokenText tokens;             // without a vocabulary ids are shown as ⟨id⟩
  std::string token_note;       // one line: why there is no vocabulary ("" with one)
  int64_t n_listed = 0;         // latents 0..n_listed-1 are listed and get a page

  // Derived by finish_site_data:
  int64_t logit_hist_bins = 0;                    // logit_hist_counts.size() / F
  std::vector<std::vector<int64_t>> latents_of_gt;  // true feature -> latents matched to it

  bool has_flags() const { return stats.dense.size() == size_t(stats.d_sae); }
  bool has_quantiles() const { return !stats.quantile_levels.empty(); }
  bool has_hist() const { return stats.hist_bins > 0; }
  bool has_neighbours() const { return stats.n_neighbours > 0; }
  bool has_gt() const { return !stats.gt_match_index.empty(); }
  bool has_logits() const { return stats.n_logit_tokens > 0; }
  bool has_logit_hist() const { return logit_hist_bins > 0; }
  // Page of latent f relative to another page in features/ (or to the site root).
  static std::string page_name(int64_t f) { return std::to_string(f) + ".html"; }
};

// Checks that every optional array of stats (and of examples, when present) has the shape
// its counts imply and that indices are in range; user error naming `features_path` or
// `examples_path` and the array otherwise. Then fills the derived fields.
void finish_site_data(SiteData& site, const std::string& features_path, const std::string& examples_path);

// Fraction of latent f's non-zero activations in (lo, hi], from its histogram (bins whose
// centre lies in the range); -1 without a histogram.
double fraction_in_range(const SiteData& site, int64_t f, double lo, double hi);

// A string or integer field of a JSON object that may lack it or hold another type (summary.json,
// a manifest's source): `fallback` then. Strings are made valid UTF-8.
std::string json_string(const nlohmann::json& obj, const char* key, const std::string& fallback = "");
int64_t json_int(const nlohmann::json& obj, const char* key, int64_t fallback = 0);

// The layer number of a TransformerLens hook name ("blocks.8.hook_resid_post" -> 8), else 0.
int64_t hook_layer(const std::string& hook);

}  // namespace saepipe
