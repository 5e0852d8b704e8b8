#include "pipeline/interpret/site_data.hpp"

#include <algorithm>
#include <cmath>
#include <regex>

#include "pipeline/core/errors.hpp"
#include "pipeline/interpret/html_text.hpp"

namespace saepipe {

namespace {

// "path: /name has N values, expected what (= M)" when v.size() != want.
template <class V>
void need_size(const V& v, size_t want, const std::string& path, const char* name, const std::string& what) {
  if (v.size() != want)
    user_error(path + ": /" + name + " has " + std::to_string(v.size()) + " values, expected " + what + " = " +
               std::to_string(want));
}

void check_example_set(const ExampleSet& s, int64_t F, int64_t C, const std::string& path, const std::string& set) {
  const size_t n = size_t(F * s.per_feature);
  const std::string what = "d_sae x " + std::to_string(s.per_feature);
  need_size(s.row, n, path, (set + "/row").c_str(), what);
  need_size(s.activation, n, path, (set + "/activation").c_str(), what);
  need_size(s.ctx_tokens, n * size_t(C), path, (set + "/ctx_tokens").c_str(), what + " x context");
  need_size(s.ctx_acts, n * size_t(C), path, (set + "/ctx_acts").c_str(), what + " x context");
}

}  // namespace

void finish_site_data(SiteData& site, const std::string& features_path, const std::string& examples_path) {
  FeatureStats& s = site.stats;
  const int64_t F = s.d_sae;
  const auto uF = size_t(F);
  if (F <= 0) user_error(features_path + ": d_sae is " + std::to_string(F));
  for (auto [v, name] : {std::pair{s.density.size(), "density"}, {s.log10_density.size(), "log10_density"},
                         {s.max_activation.size(), "max_activation"}, {s.mean_activation.size(), "mean_activation"},
                         {s.fire_count.size(), "fire_count"}, {s.dead.size(), "dead"}})
    if (v != uF) user_error(features_path + ": /" + name + " has " + std::to_string(v) + " values, expected d_sae = " + std::to_string(F));
  if (!s.dense.empty() || !s.ultralow.empty()) {
    need_size(s.dense, uF, features_path, "dense", "d_sae");
    need_size(s.ultralow, uF, features_path, "ultralow", "d_sae");
  }
  need_size(s.quantiles, uF * s.quantile_levels.size(), features_path, "quantiles", "d_sae x levels");
  if (s.hist_bins < 0) user_error(features_path + ": hist_bins is negative");
  need_size(s.hist_counts, uF * size_t(s.hist_bins), features_path, "hist_counts", "d_sae x hist_bins");
  if (!s.density_hist_counts.empty() || !s.density_hist_edges.empty())
    need_size(s.density_hist_edges, s.density_hist_counts.size() + 1, features_path, "density_hist_edges",
              "density histogram bins + 1");
  if (s.n_neighbours < 0) user_error(features_path + ": n_neighbours is negative");
  need_size(s.neighbour_index, uF * size_t(s.n_neighbours), features_path, "neighbour_index", "d_sae x n_neighbours");
  need_size(s.neighbour_cosine, uF * size_t(s.n_neighbours), features_path, "neighbour_cosine", "d_sae x n_neighbours");
  for (int32_t n : s.neighbour_index)
    if (n < -1 || n >= F) user_error(features_path + ": /neighbour_index holds " + std::to_string(n) + ", outside [0, d_sae)");
  if (!s.gt_match_index.empty()) {
    need_size(s.gt_match_index, uF, features_path, "gt_match_index", "d_sae");
    need_size(s.gt_match_cosine, uF, features_path, "gt_match_cosine", "d_sae");
  }
  if (s.n_logit_tokens < 0) user_error(features_path + ": n_logit_tokens is negative");
  const size_t nL = uF * size_t(s.n_logit_tokens);
  need_size(s.logit_top_ids, nL, features_path, "logit_top_ids", "d_sae x n_logit_tokens");
  need_size(s.logit_top_values, nL, features_path, "logit_top_values", "d_sae x n_logit_tokens");
  need_size(s.logit_bottom_ids, nL, features_path, "logit_bottom_ids", "d_sae x n_logit_tokens");
  need_size(s.logit_bottom_values, nL, features_path, "logit_bottom_values", "d_sae x n_logit_tokens");
  if (s.logit_hist_counts.size() % uF != 0)
    user_error(features_path + ": /logit_hist_counts has " + std::to_string(s.logit_hist_counts.size()) +
               " values, not a multiple of d_sae = " + std::to_string(F));
  site.logit_hist_bins = int64_t(s.logit_hist_counts.size() / uF);
  if (site.logit_hist_bins > 0) {
    need_size(s.logit_hist_lo, uF, features_path, "logit_hist_lo", "d_sae");
    need_size(s.logit_hist_hi, uF, features_path, "logit_hist_hi", "d_sae");
  }

  if (site.has_examples) {
    FeatureExamples& e = site.examples;
    if (e.d_sae != F)
      user_error(examples_path + ": d_sae is " + std::to_string(e.d_sae) + " but features.h5 has " + std::to_string(F) +
                 " (written for another SAE?)");
    if (e.context_before < 0 || e.context_after < 0 || e.top.per_feature < 0 || e.interval.per_feature < 0 ||
        e.interval_bins < 0 || e.interval_per_bin < 0)
      user_error(examples_path + ": a negative count (context_before/after, per_feature, interval_bins)");
    if (e.interval.per_feature != e.interval_bins * e.interval_per_bin)
      user_error(examples_path + ": interval examples per latent (" + std::to_string(e.interval.per_feature) +
                 ") is not interval_bins x interval_per_bin");
    check_example_set(e.top, F, e.context(), examples_path, "top");
    check_example_set(e.interval, F, e.context(), examples_path, "interval");
  }

  site.latents_of_gt.clear();
  if (site.has_gt()) {
    int64_t G = 0;
    for (int64_t g : s.gt_match_index) {
      if (g < -1) user_error(features_path + ": /gt_match_index holds " + std::to_string(g));
      G = std::max(G, g + 1);
    }
    site.latents_of_gt.resize(size_t(G));
    for (int64_t f = 0; f < F; ++f)
      if (s.gt_match_index[size_t(f)] >= 0) site.latents_of_gt[size_t(s.gt_match_index[size_t(f)])].push_back(f);
  }
  if (site.n_listed <= 0 || site.n_listed > F) site.n_listed = F;
}

double fraction_in_range(const SiteData& site, int64_t f, double lo, double hi) {
  const FeatureStats& s = site.stats;
  if (!site.has_hist()) return -1;
  const double mx = s.max_activation[size_t(f)];
  const int64_t H = s.hist_bins;
  const int64_t* c = s.hist_counts.data() + f * H;
  int64_t total = 0, in = 0;
  for (int64_t b = 0; b < H; ++b) {
    total += c[b];
    const double centre = (double(b) + 0.5) / double(H) * mx;
    if (centre > lo && centre <= hi) in += c[b];
  }
  return total > 0 ? double(in) / double(total) : 0.0;
}

std::string json_string(const nlohmann::json& obj, const char* key, const std::string& fallback) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return fallback;
  return make_valid_utf8(obj[key].get<std::string>());
}

int64_t json_int(const nlohmann::json& obj, const char* key, int64_t fallback) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number_integer()) return fallback;
  return obj[key].get<int64_t>();
}

int64_t hook_layer(const std::string& hook) {
  static const std::regex re(R"(^blocks\.(\d{1,6})\.)");
  std::smatch m;
  if (std::regex_search(hook, m, re)) return std::stoll(m[1].str());
  return 0;
}

}  // namespace saepipe
