// Sums that do not depend on the order of addition, so on neither the number of ranks nor the
// split of the tokens: each value is rounded to a multiple of 2^-40 and added exactly in 128-bit
// integers (selection_rules.hpp). Values must be finite with |v| < 2^62.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/stats/selection_rules.hpp"

namespace saepipe {

class ExactSums {
 public:
  explicit ExactSums(size_t n = 0) : acc_(n, 0) {}
  size_t size() const { return acc_.size(); }

  void add(size_t i, double v) {
    SAE_ASSERT(std::isfinite(v) && std::abs(v) < 4.6e18, "ExactSums: value out of range");
    acc_[i] += to_fixed(v);
  }
  double value(size_t i) const { return from_fixed(acc_[i]); }
  // Adds a value already in the fixed point (the CUDA passes accumulate it on the device).
  void add_fixed(size_t i, __int128 v) { acc_[i] += v; }

  // Sums every rank's accumulators (the same size on every rank) into every rank's.
  void allreduce(const MpiEnv& env) {
    const int64_t bytes = int64_t(acc_.size() * sizeof(__int128));
    std::vector<char> all = env.allgather_bytes(acc_.data(), bytes);
    std::fill(acc_.begin(), acc_.end(), 0);
    for (int r = 0; r < env.size(); ++r)
      for (size_t i = 0; i < acc_.size(); ++i) {
        __int128 v;
        std::memcpy(&v, all.data() + size_t(r) * size_t(bytes) + i * sizeof(__int128), sizeof v);
        acc_[i] += v;
      }
  }

 private:
  std::vector<__int128> acc_;
};

}  // namespace saepipe
