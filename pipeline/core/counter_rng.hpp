// Counter-based random numbers: a value depends only on (seed, a, b, c), never on the
// order of calls, the thread or the rank that asks. This is what makes the synthetic
// store and the shuffle identical for any number of ranks. tests/python/synthetic_reference.py
// reimplements it independently.
#pragma once
#include <cstdint>

#include "pipeline/core/host_device.hpp"

namespace saepipe {

// The splitmix64 output function.
SAEPIPE_HD constexpr uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

SAEPIPE_HD constexpr uint64_t counter_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b) ^ c);
}

// Uniform in [0, 1) with 53 random bits.
SAEPIPE_HD constexpr double uniform01(uint64_t h) { return double(h >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace saepipe
