// The toy model of superposition (Sharkey et al. 2022; ../shared/REFERENCES.md) and the ground
// truth for transcoders, crosscoders and feature absorption. Every number is a counter hash of
// (seed, stream, a, b) (pipeline/core/counter_rng.hpp), so token t depends only on (seed, t);
// tests/python/synthetic_reference.py reimplements this specification independently.
//
// Shape legend: G true features, D d_model, L hooks, C children per parent.
//
// Features. Feature i of the first hook has the unit direction A_i = normalize(g), g_j the
// Box-Muller normal of (stream 1, i, 2j) and (1, i, 2j+1). Normal(h1, h2) = sqrt(-2 ln(1 - u(h1)))
// cos(2 pi u(h2)) throughout, u = uniform01.
//
// Activity. Roots are the features that are not children (below); root number r (the roots in
// increasing feature index) has p = min(1, c * decay^r), c chosen so that the expected number of
// active features is mean_active (a parent counts 1 + child_probability). A root i is active when
// u(stream 2, t, i) < p_i; with correlation rho > 0 instead when sqrt(rho) z_g + sqrt(1 - rho) e_i
// < Phi^-1(p_i), z_g = Normal((4, t, 2g), (4, t, 2g+1)) shared by the group g = i / 8 and
// e_i = Normal((5, t, 2i), (5, t, 2i+1)). An active feature's coefficient is u(stream 3, t, i).
//
// Hierarchy (children = C > 0): the first P = G / (C + 1) features are parents; the children of
// parent p are features P + p C + c, c < C; features from P (C + 1) on are roots without
// children. A child can be active only with its parent, and at most one child of a parent is:
// with v = u(stream 10, t, p), child c = floor(v / child_probability * C) is active when the
// parent is and v < child_probability. An active child's coefficient is its own u(stream 3, t, i)
// (child_coefficient = "own") or its parent's (= "parent": parent and child move together, as the
// unit magnitudes of the toy models of Chanin et al. 2024 do, so a latent reading A_p + A_c
// reconstructs the pair exactly with one active latent instead of two). (Feature absorption: an
// SAE under sparsity pressure may fold the parent's direction into each child's latent and leave
// the parent's latent silent when a child fires.)
//
// Hooks. The first hook is x_0 = sum_i coef_i A_i (unchanged from the first generator). Each
// later hook l >= 1 reads the same codes through its own dictionary, plus an optional linear map
// of x_0 and noise (x_in -> x_out pairs for transcoders; "layers" for crosscoders):
//   x_l = sum_i coef_i F_l,i + hook_linear * x_0 R_l + hook_noise * n_l,t
//   F_l,i = normalize(sqrt(s) A_i + sqrt(1 - s) normalize(h)), s = hook_similarity, h_j =
//           Normal((6, l G + i, 2j), (6, l G + i, 2j+1)); F_l,i = 0 (the feature is absent from
//           hook l) when u(stream 9, l, i) < hook_absent
//   R_l [D, D], R_l[d, j] = Normal((8, l, 2(d D + j)), (8, l, 2(d D + j) + 1)) / sqrt(D)
//   n_l,t[j] = Normal((7, t, 2(l D + j)), (7, t, 2(l D + j) + 1))
// Sums in float64 in increasing i, stored as float32.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "pipeline/core/job.hpp"

namespace saepipe {

class SyntheticModel {
 public:
  // User errors (naming harvest.synthetic keys) for settings no store can have.
  explicit SyntheticModel(const SyntheticConfig& cfg, int64_t n_hooks = 1);

  int64_t d_model() const { return d_; }
  int64_t n_features() const { return g_; }
  int64_t n_hooks() const { return int64_t(features_.size()); }
  const std::vector<float>& features(int64_t hook = 0) const { return features_[size_t(hook)]; }  // [G,D]
  // [D,D] R_l of hook l >= 1; empty when hook_linear is 0 (and for the first hook).
  const std::vector<float>& linear(int64_t hook) const { return linear_[size_t(hook)]; }
  const std::vector<double>& probabilities() const { return prob_; }  // [G], marginal
  const std::vector<int64_t>& parents() const { return parent_; }     // [G], -1 for a root
  bool hierarchical() const { return children_ > 0; }

  // The active features of token t with their coefficients, in increasing feature index.
  void codes(int64_t t, std::vector<int32_t>& feature, std::vector<double>& coef) const;

  // Rows for tokens [first, first + n): out[l] [n,D] per hook; dominant [n] gets the index of the
  // largest active coefficient (n_features() when no feature is active: -1 is kept for "outside
  // the sequence" in the stats contexts), stored as the token id.
  void generate(int64_t first, int64_t n, const std::vector<float*>& out, int32_t* dominant) const;
  void generate(int64_t first, int64_t n, float* out, int32_t* dominant) const {
    generate(first, n, std::vector<float*>{out}, dominant);
  }

 private:
  int64_t d_, g_;
  uint64_t seed_;
  std::vector<std::vector<float>> features_, linear_;  // per hook
  std::vector<double> prob_;
  std::vector<int64_t> parent_;
  int64_t children_ = 0, n_parents_ = 0;
  double child_probability_ = 0, hook_linear_ = 0, hook_noise_ = 0;
  bool child_takes_parent_coef_ = false;
  double rho_ = 0;
  std::vector<double> quantile_;  // Phi^-1(p_i) of the roots, when rho_ > 0
};

// The harvest.synthetic settings a store's manifest "source" records (its description), so a
// later stage can regenerate the true codes of any token (stats: feature absorption).
SyntheticConfig synthetic_config_from_source(const nlohmann::json& source);

}  // namespace saepipe
