// One rank's part of a latent-sharded dictionary in the files that hold the whole of it
// (sae.h5, train_state.h5): latents [first, first + count) of `total`. Every rank of a latent
// grid (pipeline/core/latent_grid.hpp) holds one; the data groups hold the same ranges, so one
// rank per range writes it (`writes`, the first data group's) and one rank in all writes what
// the ranges share (`writes_shared`: b_dec, W_skip).
#pragma once
#include <cstdint>

namespace saepipe {

struct LatentPart {
  int64_t first = 0, count = 0, total = 0;
  bool writes = false, writes_shared = false;
  // The whole dictionary, held by one rank (an unsharded run's rank 0).
  static LatentPart whole(int64_t d_sae) { return {0, d_sae, d_sae, true, true}; }
};

}  // namespace saepipe
