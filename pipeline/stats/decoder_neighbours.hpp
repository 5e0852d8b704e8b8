// For every decoder row, the K other rows of highest cosine, best first (ties: lower index);
// slots beyond F - 1 hold index -1. Blocked: one sgemm per block of 256 rows x 256 rows, each
// block's best merged into every row's running best K, so memory is O(block * F), never
// O(F^2), and a latent shard computes its rows' cosines with the very calls of an unsharded run.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

void decoder_neighbours(const float* W_dec, int64_t F, int64_t D, int64_t K, std::vector<int32_t>& index,
                        std::vector<float>& cosine);

// Latent shards: W_dec [Fs, D] holds latents [s * Fs, (s + 1) * Fs) of a dictionary split over
// the S ranks of `shards` (s = shards.rank()); collective: each shard's rows are broadcast in
// turn. index / cosine [Fs, K] for this rank's latents (global indices), equal to the rows of
// the unsharded result.
void decoder_neighbours(const float* W_dec, int64_t Fs, int64_t D, int64_t K, const MpiEnv& shards,
                        std::vector<int32_t>& index, std::vector<float>& cosine);

}  // namespace saepipe
