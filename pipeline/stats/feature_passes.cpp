#include "pipeline/stats/feature_passes.hpp"

#include <algorithm>
#include <cmath>

#include "pipeline/sae/latent_shard_merge.hpp"
#include "pipeline/stats/selection_rules.hpp"

namespace saepipe {

void ReconstructionSums::add(const float* x, const float* recon, int64_t N, int64_t active) {
  const int64_t w = D / L;
  for (int64_t t = 0; t < N; ++t) {
    double e2 = 0, x2 = 0, r2 = 0, xr = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double xv = x[t * D + d], rv = recon[t * D + d];
      e2 += (rv - xv) * (rv - xv);
      x2 += xv * xv;
      r2 += rv * rv;
      xr += xv * rv;
      sums.add(size_t(4 + d), xv);
    }
    for (int64_t l = 0; L > 1 && l < L; ++l) {
      double el = 0, xl = 0;
      for (int64_t d = l * w; d < (l + 1) * w; ++d) {
        const double xv = x[t * D + d], rv = recon[t * D + d];
        el += (rv - xv) * (rv - xv);
        xl += xv * xv;
      }
      sums.add(size_t(4 + D + 2 * l), el);
      sums.add(size_t(4 + D + 2 * l + 1), xl);
    }
    sums.add(0, e2);
    sums.add(1, x2);
    sums.add(3, (x2 > 0 && r2 > 0) ? xr / std::sqrt(x2 * r2) : 0.0);
  }
  sums.add(2, double(active));
  n_tokens += N;
}

FirstPass::FirstPass(int64_t d_out, int64_t d_sae, const ExampleOptions& opt, int64_t layers)
    : F_(d_sae), recon_(d_out, layers), fire_(size_t(d_sae), 0), act_sum_(size_t(d_sae)), max_(size_t(d_sae), 0.0f),
      top_(d_sae, opt.top, opt.before, opt.after) {}

void FirstPass::add(const EncodedBatch& b, const float* x, const float* recon) {
  int64_t active = 0;
  for (int64_t t = 0; t < b.n; ++t)
    for (int64_t j = 0; j < b.width; ++j) {
      const int32_t f = b.idx[t * b.width + j];
      const float v = b.val[t * b.width + j];
      if (f < 0 || !(v > 0.0f)) continue;
      ++active;
      ++fire_[size_t(f)];
      act_sum_.add(size_t(f), v);
      max_[size_t(f)] = std::max(max_[size_t(f)], v);
      top_.offer(f, v, b.first_row + t, v, f, b);
    }
  if (recon)
    recon_.add(x, recon, b.n, active);
  else
    recon_.add_active(active);
}

void FirstPass::reduce(const MpiEnv& world, const MpiEnv& latents) {
  recon_.sums.allreduce(world);
  recon_.n_tokens = world.allreduce_sum(recon_.n_tokens);
  latents.allreduce_sum(fire_.data(), F_);
  act_sum_.allreduce(latents);
  latents.allreduce_max(max_.data(), F_);
}

void finish_counts(FeatureStats& fs, int64_t n_tokens, int64_t F, const int64_t* fire, const double* act_sum,
                   const float* max, double dense_threshold, double ultralow_threshold) {
  const double N = double(n_tokens);
  fs.n_tokens = n_tokens;
  fs.d_sae = F;
  fs.dense_threshold = dense_threshold;
  fs.ultralow_threshold = ultralow_threshold;
  for (int64_t f = 0; f < F; ++f) {
    const int64_t c = fire[f];
    const double density = double(c) / N;
    fs.fire_count.push_back(c);
    fs.density.push_back(density);
    fs.log10_density.push_back(c > 0 ? std::log10(density) : -10.0);
    fs.max_activation.push_back(max[f]);
    fs.mean_activation.push_back(c > 0 ? float(act_sum[f] / double(c)) : 0.0f);
    fs.dead.push_back(c == 0);
    fs.dense.push_back(density > dense_threshold);
    fs.ultralow.push_back(c > 0 && density < ultralow_threshold);
  }
}

void FirstPass::finish(FeatureStats& fs, double dense_threshold, double ultralow_threshold) const {
  std::vector<double> act_sum(static_cast<size_t>(F_));
  for (int64_t f = 0; f < F_; ++f) act_sum[size_t(f)] = act_sum_.value(size_t(f));
  finish_counts(fs, recon_.n_tokens, F_, fire_.data(), act_sum.data(), max_.data(), dense_threshold,
                ultralow_threshold);
}

SecondPass::SecondPass(const std::vector<float>& max_activation, int64_t hist_bins, const ExampleOptions& opt,
                       int64_t first_latent)
    : F_(int64_t(max_activation.size())), H_(hist_bins), bins_(opt.interval_bins), first_(first_latent), seed_(opt.seed),
      max_(max_activation), hist_(size_t(F_ * hist_bins), 0), fine_(size_t(F_ * kFineBins), 0),
      interval_(F_ * std::max<int64_t>(1, opt.interval_bins), opt.interval_per_bin, opt.before, opt.after) {}

void SecondPass::add(const EncodedBatch& b) {
  for (int64_t t = 0; t < b.n; ++t)
    for (int64_t j = 0; j < b.width; ++j) {
      const int32_t f = b.idx[t * b.width + j];
      const float v = b.val[t * b.width + j];
      if (f < 0 || !(v > 0.0f)) continue;
      const float hi = max_[size_t(f)];
      ++hist_[size_t(f * H_ + bin_of(v, hi, H_))];
      ++fine_[size_t(f * kFineBins + bin_of(v, hi, kFineBins))];
      if (bins_ == 0) continue;
      // Interval samples: the examples of smallest hash in each bin (priority = -hash).
      const int64_t row = b.first_row + t;
      interval_.offer(f * bins_ + bin_of(v, hi, bins_), interval_priority(seed_, int32_t(first_ + f), row), row, v, f, b);
    }
}

void SecondPass::reduce(const MpiEnv& env) {
  env.allreduce_sum(hist_.data(), int64_t(hist_.size()));
  env.allreduce_sum(fine_.data(), int64_t(fine_.size()));
}

float quantile_from_histogram(const int64_t* counts, int64_t B, float hi, double q) {
  int64_t n = 0;
  for (int64_t b = 0; b < B; ++b) n += counts[b];
  if (n == 0) return 0.0f;
  const double target = q * double(n), width = double(hi) / double(B);
  int64_t cum = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (counts[b] > 0 && double(cum + counts[b]) >= target)
      return float((double(b) + std::max(0.0, target - double(cum)) / double(counts[b])) * width);
    cum += counts[b];
  }
  return hi;
}

void finish_quantiles_and_density(FeatureStats& fs, const int64_t* fine, int64_t fine_bins, const float* max,
                                  const std::vector<double>& quantile_levels, int64_t density_bins) {
  const int64_t F = fs.d_sae;
  fs.quantile_levels = quantile_levels;
  fs.quantiles.assign(size_t(F) * quantile_levels.size(), 0.0f);
  for (int64_t f = 0; f < F; ++f)
    for (size_t i = 0; i < quantile_levels.size(); ++i)
      fs.quantiles[size_t(f) * quantile_levels.size() + i] =
          quantile_from_histogram(fine + f * fine_bins, fine_bins, max[f], quantile_levels[i]);
  finish_density_histogram(fs, density_bins);
}

void finish_density_histogram(FeatureStats& fs, int64_t density_bins) {
  const int64_t F = fs.d_sae;
  // Global histogram of log10 density over the live latents: equal bins from the lowest
  // possible density (1 / n_tokens) to 1.
  const int64_t B = density_bins;
  const double lo = std::floor(std::log10(1.0 / double(std::max<int64_t>(1, fs.n_tokens))));
  fs.density_hist_edges.resize(size_t(B + 1));
  for (int64_t b = 0; b <= B; ++b) fs.density_hist_edges[size_t(b)] = lo + (0.0 - lo) * double(b) / double(B);
  fs.density_hist_counts.assign(size_t(B), 0);
  for (int64_t f = 0; f < F; ++f) {
    if (fs.fire_count[size_t(f)] == 0) continue;
    const int64_t b = std::clamp<int64_t>(int64_t((fs.log10_density[size_t(f)] - lo) / (0.0 - lo) * double(B)), 0, B - 1);
    ++fs.density_hist_counts[size_t(b)];
  }
}

void SecondPass::finish(FeatureStats& fs, const std::vector<double>& quantile_levels) const {
  fs.hist_bins = H_;
  fs.hist_counts = hist_;
  finish_quantiles_and_density(fs, fine_.data(), kFineBins, max_.data(), quantile_levels, H_);
}

namespace {

// The CPU passes: the codes of sae_encode_decode straight into FirstPass and SecondPass. With a
// grid (latent shards) this rank's latents only: the encoder exchanges with the shard group
// (topk's selection, the reconstruction's sum) and the reductions go over the data group.
class CpuFeaturePasses final : public FeaturePasses {
 public:
  CpuFeaturePasses(const SaeParams& p, const SaeConfig& cfg, int64_t hist_bins, const ExampleOptions& opt,
                   const LatentGrid* grid)
      : params_(p), cfg_(cfg), hist_bins_(hist_bins), opt_(opt), grid_(grid),
        first_(p.d_out, p.d_sae, opt, p.layers) {
    if (!grid) return;
    shard_ = group_latent_shard(grid->shard_group(), int64_t(grid->shard()) * p.d_sae, p.d_sae,
                                p.d_sae * grid->shards());
    cfg_.shard = &shard_;
  }

  EncodedBatch encode(const float* x, const int32_t* tokens, int64_t first_row, int64_t n, int64_t L) override {
    sae_encode_decode(params_, cfg_, x, n, ws_);
    last_ = EncodedBatch{first_row, n, L, tokens, ws_.idx.data(), ws_.val.data(), ws_.width};
    return last_;
  }
  // Sharded, every shard holds the group's whole reconstruction: the lead counts it.
  void first_add(const float* x) override { first_.add(last_, x, shard_.lead ? ws_.recon.data() : nullptr); }
  void first_reduce(const MpiEnv& env) override {
    first_.reduce(env, latents(env));
    second_ = std::make_unique<SecondPass>(first_.max_activation(), hist_bins_, opt_, shard_.first);
  }
  ExampleSet top_examples(const MpiEnv& env) override { return first_.top_examples(latents(env)); }
  void second_add(const EncodedBatch& codes) override { second_->add(codes); }
  void second_reduce(const MpiEnv& env) override { second_->reduce(latents(env)); }
  ExampleSet interval_examples(const MpiEnv& env) override { return second_->interval_examples(latents(env)); }
  void finish(FeatureStats& fs, double dense_threshold, double ultralow_threshold,
              const std::vector<double>& quantile_levels) const override {
    first_.finish(fs, dense_threshold, ultralow_threshold);
    second_->finish(fs, quantile_levels);
  }
  const ReconstructionSums& recon() const override { return first_.recon(); }

 private:
  // The ranks that hold this rank's latents: the data group on a grid, else every rank.
  const MpiEnv& latents(const MpiEnv& env) const { return grid_ ? grid_->data_group() : env; }

  const SaeParams& params_;
  SaeConfig cfg_;
  int64_t hist_bins_;
  ExampleOptions opt_;
  const LatentGrid* grid_;
  LatentShard shard_;  // first = 0, lead unsharded
  SaeWorkspace ws_;
  EncodedBatch last_;
  FirstPass first_;
  std::unique_ptr<SecondPass> second_;
};

}  // namespace

std::unique_ptr<FeaturePasses> make_cpu_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                       int64_t hist_bins, const ExampleOptions& opt) {
  return std::make_unique<CpuFeaturePasses>(params, config, hist_bins, opt, nullptr);
}

std::unique_ptr<FeaturePasses> make_cpu_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                               int64_t hist_bins, const ExampleOptions& opt,
                                                               const LatentGrid& grid) {
  return std::make_unique<CpuFeaturePasses>(params, config, hist_bins, opt, &grid);
}

}  // namespace saepipe
