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

// Internal errors for parameters and settings that do not fit together.
void check_config(const SaeParams& p, const SaeConfig& cfg);

}  // namespace saepipe::sae_detail
