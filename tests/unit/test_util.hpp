// Small helpers shared by the kernel and SAE tests.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "pipeline/sae/sae.hpp"

namespace saepipe::test {

inline std::vector<float> random_normal(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

// Untied random parameters with non-zero biases (and r_mag, b_mag, W_skip where the shape has
// them), so that every gradient term is exercised.
inline SaeParams random_sae_params(const SaeShape& shape, uint64_t seed) {
  SaeParams p(shape);
  init_tied(p, seed);
  const int64_t D = p.d_in, O = p.d_out, F = p.d_sae;
  const auto noise = random_normal(size_t(F * D), seed + 1, 0.3f);
  for (int64_t i = 0; i < F * D; ++i) p.W_encT()[i] += noise[i];
  const auto be = random_normal(size_t(F), seed + 2, 0.2f), bd = random_normal(size_t(O), seed + 3, 0.2f);
  std::copy(be.begin(), be.end(), p.b_enc());
  std::copy(bd.begin(), bd.end(), p.b_dec());
  if (p.gated) {
    const auto r = random_normal(size_t(F), seed + 4, 0.3f), bm = random_normal(size_t(F), seed + 5, 0.2f);
    std::copy(r.begin(), r.end(), p.r_mag());
    std::copy(bm.begin(), bm.end(), p.b_mag());
  }
  if (p.skip) {
    const auto s = random_normal(size_t(O * D), seed + 6, 0.2f);
    std::copy(s.begin(), s.end(), p.W_skip());
  }
  return p;
}

// Sets the OpenMP thread count for one scope (tests compare 1 vs 2 threads).
struct ThreadCount {
  int saved;
  explicit ThreadCount(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
};

}  // namespace saepipe::test
