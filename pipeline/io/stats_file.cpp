#include "pipeline/io/stats_file.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/atomic_h5.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {

template <class T>
h5::Type h5_type() {
  if constexpr (std::is_same_v<T, float>) return h5::Type::Float32;
  else if constexpr (std::is_same_v<T, double>) return h5::Type::Float64;
  else if constexpr (std::is_same_v<T, int32_t>) return h5::Type::Int32;
  else if constexpr (std::is_same_v<T, int64_t>) return h5::Type::Int64;
  else return h5::Type::UInt8;
}

// [rows, inner...] from a flat vector; nothing is written for an empty one (optional data).
template <class T>
void put(const h5::File& f, const std::string& name, const std::vector<T>& v, std::vector<int64_t> inner = {}) {
  if (v.empty()) return;
  int64_t per_row = 1;
  for (int64_t n : inner) per_row *= n;
  std::vector<int64_t> dims{int64_t(v.size()) / per_row};
  dims.insert(dims.end(), inner.begin(), inner.end());
  f.create_dataset(name, h5_type<T>(), dims).write(v.data());
}

// Reads `name` as [rows, inner...]; a user error naming the dataset when its shape differs.
// Optional datasets that are absent leave `out` empty.
template <class T>
void get(const h5::File& f, const std::string& path, const std::string& name, int64_t rows,
         const std::vector<int64_t>& inner, std::vector<T>& out, bool optional = false) {
  if (!f.exists(name)) {
    if (optional) return;
    user_error(path + ": dataset /" + name + " is missing");
  }
  auto ds = f.open_dataset(name);
  std::vector<int64_t> want{rows};
  want.insert(want.end(), inner.begin(), inner.end());
  if (ds.dims() != want) {
    std::string w;
    for (int64_t n : want) w += (w.empty() ? "" : ", ") + std::to_string(n);
    user_error(ds.where() + ": shape does not match [" + w + "] (d_sae and the file's attributes)");
  }
  out = ds.read_all<T>();
}

void check_schema(const h5::File& f, const std::string& path, const std::string& schema) {
  if (!f.has_attribute("schema") || f.read_string_attribute("schema") != schema)
    user_error(path + ": not a saepipe file of kind " + schema + " (its schema attribute differs)");
  if (f.read_int_attribute("version") != 2)
    user_error(path + ": version " + std::to_string(f.read_int_attribute("version")) +
               " is not supported (expected 2; re-run the stats stage)");
}

void put_set(const h5::File& f, const std::string& g, const ExampleSet& s, int64_t C) {
  f.create_group(g).write_int_attribute("per_feature", s.per_feature);
  put(f, g + "/row", s.row, {s.per_feature});
  put(f, g + "/activation", s.activation, {s.per_feature});
  put(f, g + "/ctx_tokens", s.ctx_tokens, {s.per_feature, C});
  put(f, g + "/ctx_acts", s.ctx_acts, {s.per_feature, C});
}

ExampleSet get_set(const h5::File& f, const std::string& path, const std::string& g, int64_t F, int64_t C) {
  if (!f.exists(g)) user_error(path + ": group /" + g + " is missing");
  ExampleSet s;
  s.per_feature = f.open_group(g).read_int_attribute("per_feature");
  if (s.per_feature < 0 || s.per_feature > (int64_t(1) << 24))
    user_error(path + ": /" + g + " per_feature " + std::to_string(s.per_feature) + " is out of range");
  const bool none = s.per_feature == 0;  // an empty set writes no datasets
  get(f, path, g + "/row", F, {s.per_feature}, s.row, none);
  get(f, path, g + "/activation", F, {s.per_feature}, s.activation, none);
  get(f, path, g + "/ctx_tokens", F, {s.per_feature, C}, s.ctx_tokens, none);
  get(f, path, g + "/ctx_acts", F, {s.per_feature, C}, s.ctx_acts, none);
  return s;
}

}  // namespace

void write_feature_stats(const std::string& path, const FeatureStats& s, const std::string& resolved_job) {
  h5::AtomicFile out(path);
  {
    const h5::File& f = out.file();
    f.write_string_attribute("schema", "saepipe.stats");
    f.write_int_attribute("version", 2);
    f.write_int_attribute("n_tokens", s.n_tokens);
    f.write_int_attribute("d_sae", s.d_sae);
    f.write_int_attribute("hist_bins", s.hist_bins);
    f.write_int_attribute("n_neighbours", s.n_neighbours);
    f.write_int_attribute("n_logit_tokens", s.n_logit_tokens);
    f.write_double_attribute("dense_threshold", s.dense_threshold);
    f.write_double_attribute("ultralow_threshold", s.ultralow_threshold);
    f.write_double_vector_attribute("quantile_levels", s.quantile_levels);
    f.write_string_attribute("resolved_job", resolved_job);
    const int64_t Q = int64_t(s.quantile_levels.size());
    put(f, "fire_count", s.fire_count);
    put(f, "density", s.density);
    put(f, "log10_density", s.log10_density);
    put(f, "max_activation", s.max_activation);
    put(f, "mean_activation", s.mean_activation);
    put(f, "dead", s.dead);
    put(f, "dense", s.dense);
    put(f, "ultralow", s.ultralow);
    put(f, "quantiles", s.quantiles, {Q});
    put(f, "hist_counts", s.hist_counts, {s.hist_bins});
    put(f, "density_hist_edges", s.density_hist_edges);
    put(f, "density_hist_counts", s.density_hist_counts);
    put(f, "neighbour_index", s.neighbour_index, {s.n_neighbours});
    put(f, "neighbour_cosine", s.neighbour_cosine, {s.n_neighbours});
    put(f, "gt_match_index", s.gt_match_index);
    put(f, "gt_match_cosine", s.gt_match_cosine);
    if (s.n_layers > 0) {
      f.write_int_attribute("n_layers", s.n_layers);
      put(f, "decoder_norm_per_layer", s.decoder_norm_per_layer, {s.n_layers});
    }
    put(f, "logit_top_ids", s.logit_top_ids, {s.n_logit_tokens});
    put(f, "logit_top_values", s.logit_top_values, {s.n_logit_tokens});
    put(f, "logit_bottom_ids", s.logit_bottom_ids, {s.n_logit_tokens});
    put(f, "logit_bottom_values", s.logit_bottom_values, {s.n_logit_tokens});
    put(f, "logit_hist_counts", s.logit_hist_counts, {s.hist_bins});
    put(f, "logit_hist_lo", s.logit_hist_lo);
    put(f, "logit_hist_hi", s.logit_hist_hi);
  }
  out.commit();
}

FeatureStats read_feature_stats(const std::string& path) {
  h5::File f = h5::open_file(path);
  check_schema(f, path, "saepipe.stats");
  FeatureStats s;
  s.n_tokens = f.read_int_attribute("n_tokens");
  s.d_sae = f.read_int_attribute("d_sae");
  s.hist_bins = f.read_int_attribute("hist_bins");
  s.n_neighbours = f.read_int_attribute("n_neighbours");
  s.n_logit_tokens = f.read_int_attribute("n_logit_tokens");
  s.dense_threshold = f.read_double_attribute("dense_threshold");
  s.ultralow_threshold = f.read_double_attribute("ultralow_threshold");
  s.quantile_levels = f.read_double_vector_attribute("quantile_levels");
  const int64_t F = s.d_sae, Q = int64_t(s.quantile_levels.size());
  constexpr int64_t kMax = int64_t(1) << 24;  // so that products of these cannot overflow
  if (F < 1 || F > kMax || s.hist_bins < 0 || s.hist_bins > kMax || s.n_neighbours < 0 || s.n_neighbours > kMax ||
      s.n_logit_tokens < 0 || s.n_logit_tokens > kMax)
    user_error(path + ": attributes d_sae, hist_bins, n_neighbours, n_logit_tokens out of range");
  get(f, path, "fire_count", F, {}, s.fire_count);
  get(f, path, "density", F, {}, s.density);
  get(f, path, "log10_density", F, {}, s.log10_density);
  get(f, path, "max_activation", F, {}, s.max_activation);
  get(f, path, "mean_activation", F, {}, s.mean_activation);
  get(f, path, "dead", F, {}, s.dead);
  get(f, path, "dense", F, {}, s.dense);
  get(f, path, "ultralow", F, {}, s.ultralow);
  get(f, path, "quantiles", F, {Q}, s.quantiles, Q == 0);
  get(f, path, "hist_counts", F, {s.hist_bins}, s.hist_counts, s.hist_bins == 0);
  if (f.exists("density_hist_counts")) {
    s.density_hist_counts = f.open_dataset("density_hist_counts").read_all<int64_t>();
    get(f, path, "density_hist_edges", int64_t(s.density_hist_counts.size()) + 1, {}, s.density_hist_edges);
  }
  get(f, path, "neighbour_index", F, {s.n_neighbours}, s.neighbour_index, s.n_neighbours == 0);
  get(f, path, "neighbour_cosine", F, {s.n_neighbours}, s.neighbour_cosine, s.n_neighbours == 0);
  get(f, path, "gt_match_index", F, {}, s.gt_match_index, true);
  get(f, path, "gt_match_cosine", F, {}, s.gt_match_cosine, s.gt_match_index.empty());
  if (f.has_attribute("n_layers")) {
    s.n_layers = f.read_int_attribute("n_layers");
    if (s.n_layers < 1 || s.n_layers > 4096) user_error(path + ": attribute n_layers out of range");
    get(f, path, "decoder_norm_per_layer", F, {s.n_layers}, s.decoder_norm_per_layer);
  }
  const int64_t L = s.n_logit_tokens;
  get(f, path, "logit_top_ids", F, {L}, s.logit_top_ids, L == 0);
  get(f, path, "logit_top_values", F, {L}, s.logit_top_values, L == 0);
  get(f, path, "logit_bottom_ids", F, {L}, s.logit_bottom_ids, L == 0);
  get(f, path, "logit_bottom_values", F, {L}, s.logit_bottom_values, L == 0);
  get(f, path, "logit_hist_counts", F, {s.hist_bins}, s.logit_hist_counts, L == 0 || s.hist_bins == 0);
  get(f, path, "logit_hist_lo", F, {}, s.logit_hist_lo, L == 0);
  get(f, path, "logit_hist_hi", F, {}, s.logit_hist_hi, L == 0);
  return s;
}

void write_feature_examples(const std::string& path, const FeatureExamples& e, const std::string& resolved_job) {
  h5::AtomicFile out(path);
  {
    const h5::File& f = out.file();
    f.write_string_attribute("schema", "saepipe.examples");
    f.write_int_attribute("version", 2);
    f.write_int_attribute("d_sae", e.d_sae);
    f.write_int_attribute("context_before", e.context_before);
    f.write_int_attribute("context_after", e.context_after);
    f.write_int_attribute("interval_bins", e.interval_bins);
    f.write_int_attribute("interval_per_bin", e.interval_per_bin);
    f.write_string_attribute("resolved_job", resolved_job);
    put_set(f, "top", e.top, e.context());
    put_set(f, "interval", e.interval, e.context());
  }
  out.commit();
}

FeatureExamples read_feature_examples(const std::string& path) {
  h5::File f = h5::open_file(path);
  check_schema(f, path, "saepipe.examples");
  FeatureExamples e;
  e.d_sae = f.read_int_attribute("d_sae");
  e.context_before = f.read_int_attribute("context_before");
  e.context_after = f.read_int_attribute("context_after");
  e.interval_bins = f.read_int_attribute("interval_bins");
  e.interval_per_bin = f.read_int_attribute("interval_per_bin");
  // Bounded, so context() and the slot counts cannot overflow (found by fuzz_h5).
  constexpr int64_t kMax = int64_t(1) << 24;
  if (e.d_sae < 1 || e.d_sae > kMax || e.context_before < 0 || e.context_before > kMax || e.context_after < 0 ||
      e.context_after > kMax || e.interval_bins < 0 || e.interval_bins > kMax || e.interval_per_bin < 0 ||
      e.interval_per_bin > kMax)
    user_error(path + ": attributes d_sae, context_before/after, interval_bins/per_bin out of range");
  e.top = get_set(f, path, "top", e.d_sae, e.context());
  e.interval = get_set(f, path, "interval", e.d_sae, e.context());
  if (e.interval.per_feature != e.interval_bins * e.interval_per_bin)
    user_error(path + ": /interval per_feature is not interval_bins * interval_per_bin");
  return e;
}

}  // namespace saepipe
