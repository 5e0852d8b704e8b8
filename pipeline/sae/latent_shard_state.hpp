// A latent shard's part of the whole dictionary's vectors (parameters, Adam moments) and the
// collectives that move it: shared by the CPU and CUDA sharded steps (train_step_sharded.cpp,
// cuda/train_step_sharded.cu), which hold latents [first, first + Fs) in SaeParams' layout
// with Fs latents and the shared parameters whole: b_dec, and a skip transcoder's W_skip.
//
// Shape legend: D d_in, O d_out, F d_sae (all shards), Fs this shard's latents, S shards in the group.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/sae.hpp"

namespace saepipe {

struct LatentRange {
  int64_t D = 0, F = 0, Fs = 0, first = 0;
  // The dictionary's kind (transcoder, skip, gated, layers; d_sae is F); d_in 0: an SAE of D inputs.
  SaeShape shape{};
};
// The shapes of the whole dictionary and of the shard's part.
SaeShape whole_shape(const LatentRange& r);
SaeShape part_shape(const LatentRange& r);

// A run of a parameter vector: at full_off in the whole dictionary's layout and shard_off in the
// part's, `row` values per latent (latent segments) or `row` values in all (shared segments).
struct LatentSegment {
  int64_t full_off, shard_off, row;
};
// The shared ones, in increasing offset: b_dec [O] and, with a skip, W_skip [O,D]: whole on
// every shard, their gradient summed over the shard group.
std::vector<LatentSegment> shared_segments(const LatentRange& r);

// This shard's latents (and the shared parameters) of a whole-dictionary vector into mine.
void take_latent_range(const LatentRange& r, const std::vector<float>& full, std::vector<float>& mine);

// The whole-dictionary vector from every shard's (collective over `group`, the shard group in
// shard order; pieces of at most 256 MiB per rank, MPI counts being int). `full` is sized by
// the caller.
void gather_latent_range(const MpiEnv& group, const LatentRange& r, const std::vector<float>& mine,
                         std::vector<float>& full);
// The same on rank 0 of `group` only (MPI_Gather): `full` is written there alone.
void gather_latent_range_to_root(const MpiEnv& group, const LatentRange& r, const std::vector<float>& mine,
                                 std::vector<float>& full);

// A TrainStep's set_state and get_state on a shard: this range's part of the whole
// dictionary's parameters and Adam moments (`part` sized by the caller; no moments given, none
// taken), and the whole state from every shard's part (collective over `group`).
void take_latent_state(const LatentRange& r, const SaeParams& whole, const AdamState& whole_adam, SaeParams& part,
                       AdamState& part_adam);
void gather_latent_state(const MpiEnv& group, const LatentRange& r, const SaeParams& part,
                         const AdamState& part_adam, SaeParams& whole, AdamState& whole_adam);

// Resampling (resample.hpp) of the latents this shard holds (`mine`, its Adam moments): the
// scales from every latent's norms, gathered in latent order over `group`, so they equal the
// unsharded ones; rows [R, D] and dead [F] as TrainStep::resample. Collective over `group`.
void resample_latent_range(const MpiEnv& group, const LatentRange& r, SaeParams& mine, AdamState& adam,
                           const std::vector<int32_t>& latents, const std::vector<double>& rows,
                           const std::vector<uint8_t>& dead);

}  // namespace saepipe
