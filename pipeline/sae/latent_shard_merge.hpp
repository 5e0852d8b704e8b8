// The exact global top-K of a row from its latent shards' candidates (LatentShard::merge_top,
// sae.hpp): shared by the sharded train step (train_step_sharded.cpp) and the sharded stats
// passes (pipeline/stats/feature_passes.cpp), so both select exactly what topk_rows selects
// from the whole row: by value, ties to the lower latent.
//
// Shape legend: S shards in the group, N rows, W candidates per row and shard, K kept per row,
// Fs latents of this shard starting at `first`.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/sae.hpp"

namespace saepipe {

// Every shard's candidates (idx [N,W] global latents, -1 = empty; val [N,W]) to every shard of
// `group`, in shard order (collective).
std::vector<char> gather_shard_candidates(const MpiEnv& group, const int32_t* idx, const float* val, int64_t N,
                                          int64_t W);

// From gather_shard_candidates' result: per row the best K over every shard, of which this
// shard's (latents [first, first + Fs)) in idx_out / val_out [N,K] as local indices; the other
// slots empty (-1, 0).
void merge_shard_candidates(const std::vector<char>& all, int S, int64_t N, int64_t W, int64_t K, int64_t first,
                            int64_t Fs, int32_t* idx_out, float* val_out);

// A LatentShard for latents [first, first + Fs) of `total` over `group` (the shards of one data
// group, in shard order): merge_top and sum_rows as above, with no accounting. `group` must
// outlive it.
LatentShard group_latent_shard(const MpiEnv& group, int64_t first, int64_t Fs, int64_t total);

}  // namespace saepipe
