// Step-dependent coefficients of the training recipe. Pure functions of the step, so a
// resumed run sees the same values.
#pragma once
#include <algorithm>
#include <cstdint>

namespace saepipe {

// Learning-rate multiplier for step s (0-based) of n: linear warm-up over `warmup` steps
// (from 1/warmup to 1), flat, then linear decay to 0 over the last `decay_fraction` of the
// steps (sparsify / dictionary_learning: warm-up, decay over the last 20%).
inline double lr_factor(int64_t s, int64_t n, int64_t warmup, double decay_fraction) {
  double f = 1.0;
  if (warmup > 0 && s < warmup) f = double(s + 1) / double(warmup);
  const int64_t decay = int64_t(decay_fraction * double(n));
  if (decay > 0 && s >= n - decay) f = std::min(f, double(n - s) / double(decay));
  return f;
}

// L1 coefficient multiplier (relu): rises linearly from 0 to 1 over the first
// `warmup_fraction` of the steps (Anthropic, April 2024 update).
inline double l1_factor(int64_t s, int64_t n, double warmup_fraction) {
  const double w = warmup_fraction * double(n);
  return w > 0 ? std::min(1.0, double(s + 1) / w) : 1.0;
}

}  // namespace saepipe
