#include "pipeline/interpret/neuronpedia_export.hpp"

#include <cmath>

#include "pipeline/interpret/html_text.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

// Rounded to 3 decimals, as SAEDashboard does; non-finite values become 0.
double r3(double v) { return std::isfinite(v) ? std::round(v * 1000.0) / 1000.0 : 0.0; }

// One example as {tokens, values, bin_min, bin_max, bin_contains, qualifying_token_index};
// context positions beyond the sequence (token -1) are dropped. Null when the slot is empty.
json activation(const SiteData& site, const ExampleSet& set, int64_t f, int64_t e, double bin_min, double bin_max,
                double bin_contains) {
  const FeatureExamples& ex = site.examples;
  const size_t slot = size_t(f * set.per_feature + e);
  if (set.row[slot] < 0) return nullptr;
  const int64_t C = ex.context();
  json tokens = json::array(), values = json::array();
  int64_t qualifying = 0;
  for (int64_t c = 0; c < C; ++c) {
    const int32_t t = set.ctx_tokens[slot * size_t(C) + size_t(c)];
    if (t < 0) continue;
    if (c == ex.context_before) qualifying = int64_t(tokens.size());
    tokens.push_back(site.tokens.text(t));
    values.push_back(r3(set.ctx_acts[slot * size_t(C) + size_t(c)]));
  }
  return {{"bin_min", bin_min},        {"bin_max", bin_max}, {"bin_contains", bin_contains},
          {"tokens", std::move(tokens)}, {"values", std::move(values)},
          {"qualifying_token_index", qualifying}};
}

json feature(const SiteData& site, int64_t f, const NeuronpediaMeta& meta) {
  const FeatureStats& s = site.stats;
  const auto i = size_t(f);
  json o;
  o["feature_index"] = f;
  for (const char* k : {"neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1",
                        "correlated_neurons_indices", "correlated_neurons_l1", "correlated_neurons_pearson",
                        "correlated_features_indices", "correlated_features_l1", "correlated_features_pearson",
                        "decoder_weights_dist"})
    o[k] = json::array();

  json pos_str = json::array(), pos_values = json::array(), neg_str = json::array(), neg_values = json::array();
  for (int64_t l = 0; l < s.n_logit_tokens; ++l) {
    const size_t k = i * size_t(s.n_logit_tokens) + size_t(l);
    pos_str.push_back(site.tokens.text(s.logit_top_ids[k]));
    pos_values.push_back(r3(s.logit_top_values[k]));
    neg_str.push_back(site.tokens.text(s.logit_bottom_ids[k]));
    neg_values.push_back(r3(s.logit_bottom_values[k]));
  }
  o["pos_str"] = std::move(pos_str);
  o["pos_values"] = std::move(pos_values);
  o["neg_str"] = std::move(neg_str);
  o["neg_values"] = std::move(neg_values);
  o["frac_nonzero"] = s.density[i];

  // Histograms: bar_values are the bin centres, bar_heights the counts.
  json fv = json::array(), fh = json::array(), lv = json::array(), lh = json::array();
  const double mx = s.max_activation[i];
  for (int64_t b = 0; b < s.hist_bins; ++b) {
    fv.push_back(r3(mx * (double(b) + 0.5) / double(s.hist_bins)));
    fh.push_back(s.hist_counts[i * size_t(s.hist_bins) + size_t(b)]);
  }
  const int64_t LB = site.logit_hist_bins;
  for (int64_t b = 0; b < LB; ++b) {
    const double lo = s.logit_hist_lo[i], hi = s.logit_hist_hi[i];
    lv.push_back(r3(lo + (hi - lo) * (double(b) + 0.5) / double(LB)));
    lh.push_back(s.logit_hist_counts[i * size_t(LB) + size_t(b)]);
  }
  o["freq_hist_data_bar_values"] = std::move(fv);
  o["freq_hist_data_bar_heights"] = std::move(fh);
  o["logits_hist_data_bar_values"] = std::move(lv);
  o["logits_hist_data_bar_heights"] = std::move(lh);
  o["n_prompts_total"] = meta.n_prompts_total;
  o["n_tokens_in_prompt"] = meta.n_tokens_in_prompt;
  o["dataset"] = make_valid_utf8(meta.dataset);

  json acts = json::array();
  if (site.has_examples) {
    const FeatureExamples& ex = site.examples;
    // The top group: bin_min -1, bin_max the latent's max, bin_contains -1 (as SAEDashboard).
    for (int64_t e = 0; e < ex.top.per_feature; ++e) {
      json a = activation(site, ex.top, f, e, -1.0, r3(mx), -1.0);
      if (!a.is_null()) acts.push_back(std::move(a));
    }
    for (int64_t b = 0; b < ex.interval_bins; ++b) {
      const double lo = mx * double(b) / double(ex.interval_bins), hi = mx * double(b + 1) / double(ex.interval_bins);
      const double frac = fraction_in_range(site, f, lo, hi);
      for (int64_t e = b * ex.interval_per_bin; e < (b + 1) * ex.interval_per_bin; ++e) {
        json a = activation(site, ex.interval, f, e, r3(lo), r3(hi), frac < 0 ? 0.0 : r3(frac));
        if (!a.is_null()) acts.push_back(std::move(a));
      }
    }
  }
  o["activations"] = std::move(acts);
  o["vector"] = json::array();  // as SAEDashboard's SAE runner: only its vector runner fills it
  return o;
}

// Neuronpedia's feature-row fields the importer leaves empty or derives (maxActApprox: the
// largest rounded value among the examples).
json feature_extras(const SiteData& site, int64_t f) {
  const FeatureStats& s = site.stats;
  const auto i = size_t(f);
  json nb_i = json::array(), nb_v = json::array();
  for (int64_t k = 0; k < s.n_neighbours; ++k) {
    const size_t at = i * size_t(s.n_neighbours) + size_t(k);
    if (s.neighbour_index[at] < 0) continue;
    nb_i.push_back(s.neighbour_index[at]);
    nb_v.push_back(r3(s.neighbour_cosine[at]));
  }
  return {{"index", f},
          {"maxActApprox", std::isfinite(s.max_activation[i]) ? double(s.max_activation[i]) : 0.0},
          {"topkCosSimIndices", std::move(nb_i)},
          {"topkCosSimValues", std::move(nb_v)}};
}

}  // namespace

json neuronpedia_batch(const SiteData& site, int64_t first, int64_t last, const NeuronpediaMeta& meta) {
  json features = json::array();
  for (int64_t f = first; f < last; ++f) features.push_back(feature(site, f, meta));
  return {{"model_id", make_valid_utf8(meta.model_id)},
          {"layer", meta.layer},
          {"sae_set", make_valid_utf8(meta.sae_set)},
          {"sae_id_suffix", nullptr},
          {"features", std::move(features)}};
}

json neuronpedia_feature_extras(const SiteData& site, int64_t first, int64_t last, const NeuronpediaMeta& meta) {
  json features = json::array();
  for (int64_t f = first; f < last; ++f) features.push_back(feature_extras(site, f));
  return {{"schema", "saepipe.neuronpedia_extras"},
          {"version", 1},
          {"model_id", make_valid_utf8(meta.model_id)},
          {"layer", meta.layer},
          {"sae_set", make_valid_utf8(meta.sae_set)},
          {"sae_id_suffix", nullptr},
          {"features", std::move(features)}};
}

}  // namespace saepipe
