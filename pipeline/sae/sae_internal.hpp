// Helpers shared by the SAE's source files (sae.cpp, forward_backward.cpp, loss_reference.cpp);
// not part of the interface.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/sae/sae.hpp"

namespace saepipe::sae_detail {

template <class T>
void grow(std::vector<T>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
}

// out[d] += scale * sum_n a[n, d], summed in increasing n per column (deterministic); threads
// split the columns.
void add_column_sums(const float* a, int64_t N, int64_t D, double scale, double* out);

// Float64 sums over a row in 8 fixed lanes, added pairwise at the end: a fixed order (the
// result depends on neither threads nor ranks) that the compiler can vectorise, where one
// running sum is a chain of dependent adds (4 cycles each: ~5 ms a step at 4096 x 768).
// sum of a[d]^2:
double row_sum_of_squares(const float* a, int64_t D);
// g[d] = scale * (recon[d] - y[d]); returns the sum of (recon[d] - y[d])^2.
double row_scaled_error(const float* recon, const float* y, int64_t D, double scale, float* g);
// The train step's target statistics: sum_y[d] += sum_n y[n, d] (add_column_sums) and the return
// value sum_n sum_d y[n, d]^2 (rows in increasing n); threads split columns, then rows.
double add_target_sums(const float* y, int64_t N, int64_t D, double* sum_y);

// Internal errors for parameters and settings that do not fit together.
void check_config(const SaeParams& p, const SaeConfig& cfg);

}  // namespace saepipe::sae_detail
