#include "pipeline/model/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/counter_rng.hpp"

namespace saepipe {

namespace {
// Streams of the counter hash, so features, activity and coefficients never share numbers.
constexpr uint64_t kFeatureStream = 1, kActiveStream = 2, kCoefStream = 3, kGroupStream = 4, kOwnStream = 5;
constexpr int64_t kCorrelatedGroup = 8;

double normal_from(uint64_t h1, uint64_t h2) {  // Box-Muller
  return std::sqrt(-2.0 * std::log1p(-uniform01(h1))) * std::cos(2.0 * M_PI * uniform01(h2));
}
// Phi^-1(p) by bisection on Phi(x) = erfc(-x / sqrt 2) / 2 (once per feature).
double normal_quantile(double p) {
  if (p >= 1) return INFINITY;
  double lo = -40, hi = 40;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// c such that sum_i min(1, c * decay^i) = mean_active (the sum is monotone in c).
std::vector<double> firing_probabilities(int64_t g, double decay, double mean_active) {
  auto total = [&](double c) {
    double s = 0, w = 1;
    for (int64_t i = 0; i < g; ++i, w *= decay) s += std::min(1.0, c * w);
    return s;
  };
  double lo = 0, hi = 1;
  while (total(hi) < mean_active) hi *= 2;
  for (int it = 0; it < 200; ++it) {
    double mid = 0.5 * (lo + hi);
    (total(mid) < mean_active ? lo : hi) = mid;
  }
  std::vector<double> p(g);
  double w = 1;
  for (int64_t i = 0; i < g; ++i, w *= decay) p[i] = std::min(1.0, hi * w);
  return p;
}
}  // namespace

SyntheticModel::SyntheticModel(const SyntheticConfig& cfg)
    : d_(cfg.d_model), g_(cfg.n_features), seed_(uint64_t(cfg.seed)) {
  if (cfg.mean_active > double(cfg.n_features))
    user_error("harvest.synthetic.mean_active (" + std::to_string(cfg.mean_active) +
               ") cannot exceed harvest.synthetic.n_features (" + std::to_string(cfg.n_features) + ")");
  features_.resize(size_t(g_ * d_));
  for (int64_t i = 0; i < g_; ++i) {
    std::vector<double> row(d_);
    double norm2 = 0;
    for (int64_t j = 0; j < d_; ++j) {
      // Box-Muller from two counter-hashed uniforms.
      double u1 = uniform01(counter_hash(seed_, kFeatureStream, uint64_t(i), uint64_t(2 * j)));
      double u2 = uniform01(counter_hash(seed_, kFeatureStream, uint64_t(i), uint64_t(2 * j + 1)));
      row[j] = std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * M_PI * u2);
      norm2 += row[j] * row[j];
    }
    double inv = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
    for (int64_t j = 0; j < d_; ++j) features_[i * d_ + j] = float(row[j] * inv);
  }
  prob_ = firing_probabilities(g_, cfg.decay, cfg.mean_active);
  rho_ = cfg.correlation;
  if (rho_ > 0)
    for (double p : prob_) quantile_.push_back(normal_quantile(p));
}

void SyntheticModel::generate(int64_t first, int64_t n, float* out, int32_t* dominant) const {
#pragma omp parallel
  {
    std::vector<double> acc(d_);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      uint64_t t = uint64_t(first + r);
      std::fill(acc.begin(), acc.end(), 0.0);
      int32_t best = int32_t(g_);  // none active
      double best_coef = -1;
      for (int64_t i = 0; i < g_; ++i) {
        if (rho_ > 0) {
          const uint64_t g = uint64_t(i / kCorrelatedGroup);
          const double z = normal_from(counter_hash(seed_, kGroupStream, t, 2 * g),
                                       counter_hash(seed_, kGroupStream, t, 2 * g + 1));
          const double e = normal_from(counter_hash(seed_, kOwnStream, t, 2 * uint64_t(i)),
                                       counter_hash(seed_, kOwnStream, t, 2 * uint64_t(i) + 1));
          if (std::sqrt(rho_) * z + std::sqrt(1 - rho_) * e >= quantile_[i]) continue;
        } else if (uniform01(counter_hash(seed_, kActiveStream, t, uint64_t(i))) >= prob_[i]) {
          continue;
        }
        double coef = uniform01(counter_hash(seed_, kCoefStream, t, uint64_t(i)));
        const float* f = features_.data() + i * d_;
        for (int64_t j = 0; j < d_; ++j) acc[j] += coef * double(f[j]);
        if (coef > best_coef) best_coef = coef, best = int32_t(i);
      }
      for (int64_t j = 0; j < d_; ++j) out[r * d_ + j] = float(acc[j]);
      dominant[r] = best;
    }
  }
}

}  // namespace saepipe
