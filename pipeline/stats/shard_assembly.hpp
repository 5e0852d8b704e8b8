// Latent shards' statistics into one dictionary's ([resources.stats] latent_shards = S > 1):
// each shard of a data group finished the statistics of its latents [s * Fs, (s + 1) * Fs);
// concatenated in shard order they are exactly what an unsharded run finishes, but for the
// global density histogram, which is redone over every latent.
#pragma once
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/stats_file.hpp"

namespace saepipe {

// Collective over `shards` (one data group's shards, in shard order). fs: this shard's per-latent
// arrays (FeaturePasses::finish); density_bins as its histogram's. On return the group's rank 0
// holds all of them (d_sae = S * Fs); the others' arrays are emptied.
void assemble_shard_stats(const MpiEnv& shards, FeatureStats& fs, int64_t density_bins);

// The same for a set of examples ([Fs, E] per shard).
void assemble_shard_examples(const MpiEnv& shards, ExampleSet& set);

}  // namespace saepipe
