// Rules of the stats passes that the CPU code (feature_passes.cpp) and the CUDA passes
// (pipeline/stats/cuda/feature_passes.cu) must apply identically: the fixed point of the exact sums, the
// bin of an activation, and the priority that picks interval samples.
#pragma once
#include <math.h>

#include <cstdint>

#include "pipeline/core/host_device.hpp"
#include "pipeline/core/counter_rng.hpp"

namespace saepipe {

// Exact sums add values rounded to a multiple of 2^-kFixedFracBits in 128-bit integers.
constexpr int kFixedFracBits = 40;

// v (finite, |v| < 2^62) in fixed point.
SAEPIPE_HD inline __int128 to_fixed(double v) {
  const double hi = floor(v);
  const double lo = v - hi;  // exact: in [0, 1)
  return (static_cast<__int128>(static_cast<long long>(hi)) << kFixedFracBits) +
         static_cast<__int128>(llround(lo * double(1ull << kFixedFracBits)));  // exact scaling
}

inline double from_fixed(__int128 acc) { return ldexp(static_cast<double>(acc), -kFixedFracBits); }

// Bin of a in (0, hi] among B equal bins (hi itself in the last).
SAEPIPE_HD inline int64_t bin_of(float a, float hi, int64_t B) {
  const int64_t b = static_cast<int64_t>(double(a) / double(hi) * double(B));
  return b < B - 1 ? b : B - 1;
}

// Interval samples are the examples of highest priority (smallest hash) in their bin.
SAEPIPE_HD inline uint64_t interval_hash(uint64_t seed, int32_t f, int64_t row) {
  return counter_hash(seed, 0x1A7E5A11ull, uint64_t(f), uint64_t(row));
}
SAEPIPE_HD inline double interval_priority(uint64_t seed, int32_t f, int64_t row) {
  return -uniform01(interval_hash(seed, f, row));
}

}  // namespace saepipe
