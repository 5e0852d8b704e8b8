// Small helpers shared by the kernel and SAE tests.
#pragma once
#include <omp.h>

#include <cstdint>
#include <random>
#include <vector>

namespace saepipe::test {

inline std::vector<float> random_normal(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

// Sets the OpenMP thread count for one scope (tests compare 1 vs 2 threads).
struct ThreadCount {
  int saved;
  explicit ThreadCount(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
};

}  // namespace saepipe::test
