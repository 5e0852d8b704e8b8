// Latent shards' statistics into one dictionary's (shard_assembly.hpp).
#include "pipeline/stats/shard_assembly.hpp"

#include <algorithm>
#include <cstring>

#include <mpi.h>

#include "pipeline/core/errors.hpp"
#include "pipeline/stats/feature_passes.hpp"

namespace saepipe {

namespace {

// v: this shard's [Fs, row] values (as long on every shard); on return, on the group's rank 0,
// every shard's in shard order; the others' emptied. Pieces of at most 256 MiB per rank (MPI
// counts are int).
template <class T>
void concatenate(const MpiEnv& shards, std::vector<T>& v) {
  const int S = shards.size();
  const bool root = shards.rank() == 0;
  const auto mine = int64_t(v.size());
  constexpr int64_t kPiece = (int64_t(1) << 28) / int64_t(sizeof(T));
  std::vector<T> all(root ? static_cast<size_t>(mine * S) : 0);
  std::vector<char> got(root ? static_cast<size_t>(std::min(kPiece, mine) * S) * sizeof(T) : 0);
  for (int64_t off = 0; off < mine; off += kPiece) {
    const int64_t n = std::min(kPiece, mine - off);
    const int bytes = int(n * int64_t(sizeof(T)));
    SAE_MPI_CHECK(MPI_Gather(v.data() + off, bytes, MPI_BYTE, got.data(), bytes, MPI_BYTE, 0, shards.comm()));
    for (int s = 0; root && s < S; ++s)
      std::memcpy(all.data() + int64_t(s) * mine + off, got.data() + size_t(s) * size_t(bytes), size_t(bytes));
  }
  v = std::move(all);
}

}  // namespace

void assemble_shard_stats(const MpiEnv& shards, FeatureStats& fs, int64_t density_bins) {
  concatenate(shards, fs.fire_count);
  concatenate(shards, fs.density);
  concatenate(shards, fs.log10_density);
  concatenate(shards, fs.max_activation);
  concatenate(shards, fs.mean_activation);
  concatenate(shards, fs.dead);
  concatenate(shards, fs.dense);
  concatenate(shards, fs.ultralow);
  concatenate(shards, fs.quantiles);
  concatenate(shards, fs.hist_counts);
  concatenate(shards, fs.neighbour_index);
  concatenate(shards, fs.neighbour_cosine);
  concatenate(shards, fs.gt_match_index);
  concatenate(shards, fs.gt_match_cosine);
  concatenate(shards, fs.decoder_norm_per_layer);
  concatenate(shards, fs.logit_top_ids);
  concatenate(shards, fs.logit_top_values);
  concatenate(shards, fs.logit_bottom_ids);
  concatenate(shards, fs.logit_bottom_values);
  concatenate(shards, fs.logit_hist_counts);
  concatenate(shards, fs.logit_hist_lo);
  concatenate(shards, fs.logit_hist_hi);
  fs.d_sae *= shards.size();
  if (shards.rank() == 0) finish_density_histogram(fs, density_bins);
}

void assemble_shard_examples(const MpiEnv& shards, ExampleSet& set) {
  concatenate(shards, set.row);
  concatenate(shards, set.activation);
  concatenate(shards, set.ctx_tokens);
  concatenate(shards, set.ctx_acts);
}

}  // namespace saepipe
