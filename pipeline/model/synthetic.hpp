// The toy model of superposition (Sharkey et al. 2022; ../shared/REFERENCES.md):
// n_features unit-norm Gaussian directions in d_model dimensions; feature i is active with
// probability p_i = min(1, c * decay^i), c chosen so that sum_i p_i = mean_active; active
// coefficients are U[0,1]. Token t's vector depends only on (seed, t).
// With correlation rho > 0, activity is correlated through a Gaussian copula: feature i is
// active when sqrt(rho) z_g + sqrt(1 - rho) e_i < Phi^-1(p_i), with z_g shared by the
// group g = i / 8 of consecutive features and e_i its own normal (the marginal p_i is kept).
//
// Shape legend: G true features, D d_model.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/core/job.hpp"

namespace saepipe {

class SyntheticModel {
 public:
  explicit SyntheticModel(const SyntheticConfig& cfg);  // user error if mean_active > n_features

  int64_t d_model() const { return d_; }
  int64_t n_features() const { return g_; }
  const std::vector<float>& features() const { return features_; }   // [G,D], unit rows
  const std::vector<double>& probabilities() const { return prob_; }  // [G]

  // Rows for tokens [first, first + n): out [n,D]; dominant [n] gets the index of the
  // largest active coefficient (n_features() when no feature is active: -1 is kept for "outside
  // the sequence" in the stats contexts), stored as the token id.
  void generate(int64_t first, int64_t n, float* out, int32_t* dominant) const;

 private:
  int64_t d_, g_;
  uint64_t seed_;
  std::vector<float> features_;
  std::vector<double> prob_;
  double rho_ = 0;
  std::vector<double> quantile_;  // Phi^-1(p_i), when rho_ > 0
};

}  // namespace saepipe
