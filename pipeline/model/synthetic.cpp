#include "pipeline/model/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "pipeline/core/counter_rng.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe {

namespace {
// Streams of the counter hash, so no two uses share numbers (see synthetic.hpp).
constexpr uint64_t kFeatureStream = 1, kActiveStream = 2, kCoefStream = 3, kGroupStream = 4, kOwnStream = 5,
                   kHookFeatureStream = 6, kNoiseStream = 7, kLinearStream = 8, kAbsentStream = 9, kChildStream = 10;
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

// c such that sum_r min(1, c * decay^r) * weight_r = mean_active (the sum is monotone in c);
// returns the root probabilities min(1, c * decay^r).
std::vector<double> root_probabilities(const std::vector<double>& weight, double decay, double mean_active) {
  auto total = [&](double c) {
    double s = 0, w = 1;
    for (double m : weight) s += std::min(1.0, c * w) * m, w *= decay;
    return s;
  };
  double lo = 0, hi = 1;
  while (total(hi) < mean_active) hi *= 2;
  for (int it = 0; it < 200; ++it) {
    double mid = 0.5 * (lo + hi);
    (total(mid) < mean_active ? lo : hi) = mid;
  }
  std::vector<double> p(weight.size());
  double w = 1;
  for (size_t r = 0; r < weight.size(); ++r, w *= decay) p[r] = std::min(1.0, hi * w);
  return p;
}

// A unit row from Box-Muller normals of (stream, a, 2j) and (stream, a, 2j+1).
std::vector<double> unit_normal_row(uint64_t seed, uint64_t stream, uint64_t a, int64_t d) {
  std::vector<double> row(static_cast<size_t>(d));
  double norm2 = 0;
  for (int64_t j = 0; j < d; ++j) {
    row[j] = normal_from(counter_hash(seed, stream, a, uint64_t(2 * j)), counter_hash(seed, stream, a, uint64_t(2 * j + 1)));
    norm2 += row[j] * row[j];
  }
  const double inv = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
  for (double& v : row) v *= inv;
  return row;
}
}  // namespace

SyntheticModel::SyntheticModel(const SyntheticConfig& cfg, int64_t n_hooks)
    : d_(cfg.d_model), g_(cfg.n_features), seed_(uint64_t(cfg.seed)) {
  SAE_ASSERT(n_hooks >= 1, "the synthetic source needs a hook");
  children_ = cfg.children;
  child_probability_ = cfg.child_probability;
  if (cfg.child_coefficient != "own" && cfg.child_coefficient != "parent")
    user_error("harvest.synthetic.child_coefficient must be \"own\" or \"parent\", got \"" + cfg.child_coefficient + "\"");
  child_takes_parent_coef_ = cfg.child_coefficient == "parent";
  hook_linear_ = cfg.hook_linear;
  hook_noise_ = cfg.hook_noise;
  rho_ = cfg.correlation;
  if (children_ > 0 && g_ < children_ + 1)
    user_error("harvest.synthetic.children (" + std::to_string(children_) + ") needs n_features >= children + 1, got " +
               std::to_string(g_));
  n_parents_ = children_ > 0 ? g_ / (children_ + 1) : 0;
  parent_.assign(size_t(g_), -1);
  for (int64_t p = 0; p < n_parents_; ++p)
    for (int64_t c = 0; c < children_; ++c) parent_[size_t(n_parents_ + p * children_ + c)] = p;

  // Roots in increasing index, each weighted by its expected number of active features.
  std::vector<int64_t> roots;
  std::vector<double> weight;
  for (int64_t i = 0; i < g_; ++i)
    if (parent_[i] < 0) {
      roots.push_back(i);
      weight.push_back(i < n_parents_ ? 1.0 + child_probability_ : 1.0);
    }
  double most = 0;
  for (double w : weight) most += w;
  if (cfg.mean_active > most)
    user_error("harvest.synthetic.mean_active (" + std::to_string(cfg.mean_active) +
               ") cannot exceed the expected number of active features when every root feature is active (" +
               std::to_string(most) + ": n_features " + std::to_string(g_) + ", children " + std::to_string(children_) +
               ")");
  const std::vector<double> p_root = root_probabilities(weight, cfg.decay, cfg.mean_active);
  prob_.assign(size_t(g_), 0.0);
  for (size_t r = 0; r < roots.size(); ++r) prob_[size_t(roots[r])] = p_root[r];
  for (int64_t i = 0; i < g_; ++i)
    if (parent_[i] >= 0) prob_[i] = prob_[size_t(parent_[i])] * child_probability_ / double(children_);
  if (rho_ > 0) {
    quantile_.assign(size_t(g_), 0.0);
    for (int64_t i : roots) quantile_[size_t(i)] = normal_quantile(prob_[i]);
  }

  features_.assign(size_t(n_hooks), std::vector<float>(size_t(g_ * d_)));
  linear_.assign(size_t(n_hooks), {});
  std::vector<std::vector<double>> first(static_cast<size_t>(g_));
  for (int64_t i = 0; i < g_; ++i) {
    first[i] = unit_normal_row(seed_, kFeatureStream, uint64_t(i), d_);
    for (int64_t j = 0; j < d_; ++j) features_[0][i * d_ + j] = float(first[i][j]);
  }
  const double s = cfg.hook_similarity;
  for (int64_t l = 1; l < n_hooks; ++l) {
    for (int64_t i = 0; i < g_; ++i) {
      if (uniform01(counter_hash(seed_, kAbsentStream, uint64_t(l), uint64_t(i))) < cfg.hook_absent) continue;  // stays 0
      std::vector<double> h = unit_normal_row(seed_, kHookFeatureStream, uint64_t(l * g_ + i), d_);
      double norm2 = 0;
      for (int64_t j = 0; j < d_; ++j) {
        h[j] = std::sqrt(s) * first[i][j] + std::sqrt(1 - s) * h[j];
        norm2 += h[j] * h[j];
      }
      const double inv = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
      for (int64_t j = 0; j < d_; ++j) features_[l][i * d_ + j] = float(h[j] * inv);
    }
    if (hook_linear_ > 0) {
      linear_[l].resize(size_t(d_ * d_));
      const double scale = 1.0 / std::sqrt(double(d_));
      for (int64_t e = 0; e < d_ * d_; ++e)
        linear_[l][e] = float(scale * normal_from(counter_hash(seed_, kLinearStream, uint64_t(l), uint64_t(2 * e)),
                                                  counter_hash(seed_, kLinearStream, uint64_t(l), uint64_t(2 * e + 1))));
    }
  }
}

void SyntheticModel::codes(int64_t t_, std::vector<int32_t>& feature, std::vector<double>& coef) const {
  const uint64_t t = uint64_t(t_);
  feature.clear();
  coef.clear();
  // Parents come first (indices < P), so a child's parent is decided before the child.
  std::vector<uint8_t> parent_active(size_t(n_parents_), 0);
  std::vector<double> parent_coef(size_t(n_parents_), 0.0);
  for (int64_t i = 0; i < g_; ++i) {
    const int64_t p = parent_[i];
    if (p >= 0) {
      if (!parent_active[p]) continue;
      const double v = uniform01(counter_hash(seed_, kChildStream, t, uint64_t(p)));
      if (!(v < child_probability_)) continue;
      const int64_t c = std::min<int64_t>(children_ - 1, int64_t(v / child_probability_ * double(children_)));
      if (i != n_parents_ + p * children_ + c) continue;
    } else if (rho_ > 0) {
      const uint64_t g = uint64_t(i / kCorrelatedGroup);
      const double z = normal_from(counter_hash(seed_, kGroupStream, t, 2 * g), counter_hash(seed_, kGroupStream, t, 2 * g + 1));
      const double e = normal_from(counter_hash(seed_, kOwnStream, t, 2 * uint64_t(i)),
                                   counter_hash(seed_, kOwnStream, t, 2 * uint64_t(i) + 1));
      if (std::sqrt(rho_) * z + std::sqrt(1 - rho_) * e >= quantile_[i]) continue;
    } else if (uniform01(counter_hash(seed_, kActiveStream, t, uint64_t(i))) >= prob_[i]) {
      continue;
    }
    const double c = p >= 0 && child_takes_parent_coef_ ? parent_coef[p] : uniform01(counter_hash(seed_, kCoefStream, t, uint64_t(i)));
    if (i < n_parents_) parent_active[i] = 1, parent_coef[i] = c;
    feature.push_back(int32_t(i));
    coef.push_back(c);
  }
}

void SyntheticModel::generate(int64_t first, int64_t n, const std::vector<float*>& out, int32_t* dominant) const {
  SAE_ASSERT(int64_t(out.size()) == n_hooks(), "one output per hook");
  const int64_t L = n_hooks(), D = d_;
#pragma omp parallel
  {
    std::vector<double> x0(static_cast<size_t>(D)), acc(static_cast<size_t>(D));
    std::vector<int32_t> feature;
    std::vector<double> coef;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      const int64_t t = first + r;
      codes(t, feature, coef);
      int32_t best = int32_t(g_);  // none active
      double best_coef = -1;
      for (size_t a = 0; a < feature.size(); ++a)
        if (coef[a] > best_coef) best_coef = coef[a], best = feature[a];
      dominant[r] = best;
      for (int64_t l = 0; l < L; ++l) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (size_t a = 0; a < feature.size(); ++a) {
          const float* f = features_[l].data() + int64_t(feature[a]) * D;
          for (int64_t j = 0; j < D; ++j) acc[j] += coef[a] * double(f[j]);
        }
        if (l == 0) std::copy(acc.begin(), acc.end(), x0.begin());
        if (l > 0 && hook_linear_ > 0) {
          const float* R = linear_[l].data();
          for (int64_t d = 0; d < D; ++d) {
            if (x0[d] == 0.0) continue;
            const double xd = hook_linear_ * x0[d];
            for (int64_t j = 0; j < D; ++j) acc[j] += xd * double(R[d * D + j]);
          }
        }
        if (l > 0 && hook_noise_ > 0)
          for (int64_t j = 0; j < D; ++j)
            acc[j] += hook_noise_ * normal_from(counter_hash(seed_, kNoiseStream, uint64_t(t), uint64_t(2 * (l * D + j))),
                                                counter_hash(seed_, kNoiseStream, uint64_t(t), uint64_t(2 * (l * D + j) + 1)));
        float* o = out[size_t(l)] + r * D;
        for (int64_t j = 0; j < D; ++j) o[j] = float(acc[j]);
      }
    }
  }
}

SyntheticConfig synthetic_config_from_source(const nlohmann::json& src) {
  SyntheticConfig c;
  c.d_model = src.value("d_model", int64_t(0));
  c.n_features = src.value("n_features", int64_t(0));
  c.mean_active = src.value("mean_active", 0.0);
  c.decay = src.value("decay", 0.0);
  c.seed = src.value("seed", int64_t(0));
  c.correlation = src.value("correlation", 0.0);
  c.children = src.value("children", int64_t(0));
  c.child_probability = src.value("child_probability", 0.0);
  c.child_coefficient = src.value("child_coefficient", std::string("own"));
  c.hook_similarity = src.value("hook_similarity", 0.0);
  c.hook_noise = src.value("hook_noise", 0.0);
  c.hook_linear = src.value("hook_linear", 0.0);
  c.hook_absent = src.value("hook_absent", 0.0);
  return c;
}

}  // namespace saepipe
