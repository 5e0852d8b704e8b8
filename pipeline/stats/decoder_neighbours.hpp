// For every decoder row, the K other rows of highest cosine, best first (ties: lower index);
// slots beyond F - 1 hold index -1. Blocked: one sgemm per block of rows against all rows, so
// memory is O(block * F), never O(F^2).
#pragma once
#include <cstdint>
#include <vector>

namespace saepipe {

void decoder_neighbours(const float* W_dec, int64_t F, int64_t D, int64_t K, std::vector<int32_t>& index,
                        std::vector<float>& cosine);

}  // namespace saepipe
