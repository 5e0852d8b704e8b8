// The shards' candidate exchange (latent_shard_merge.hpp).
#include "pipeline/sae/latent_shard_merge.hpp"

#include <algorithm>

namespace saepipe {

namespace {

struct Candidate {
  float val;
  int32_t idx;  // global latent; -1: empty
};

}  // namespace

std::vector<char> gather_shard_candidates(const MpiEnv& group, const int32_t* idx, const float* val, int64_t N,
                                          int64_t W) {
  std::vector<Candidate> mine(static_cast<size_t>(N * W));
  for (int64_t s = 0; s < N * W; ++s) mine[size_t(s)] = Candidate{val[s], idx[s]};
  return group.allgather_bytes(mine.data(), N * W * int64_t(sizeof(Candidate)));
}

void merge_shard_candidates(const std::vector<char>& all, int S, int64_t N, int64_t W, int64_t K, int64_t first,
                            int64_t Fs, int32_t* idx_out, float* val_out) {
  const auto* cand = reinterpret_cast<const Candidate*>(all.data());
  const auto better = [](const Candidate& a, const Candidate& b) {
    return a.val > b.val || (a.val == b.val && a.idx < b.idx);
  };
#pragma omp parallel
  {
    std::vector<Candidate> row;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      row.clear();
      for (int s = 0; s < S; ++s)
        for (int64_t j = 0; j < W; ++j) {
          const Candidate& c = cand[(int64_t(s) * N + n) * W + j];
          if (c.idx >= 0) row.push_back(c);
        }
      const int64_t keep = std::min<int64_t>(K, int64_t(row.size()));
      std::partial_sort(row.begin(), row.begin() + keep, row.end(), better);
      for (int64_t j = 0; j < K; ++j) {
        const bool here = j < keep && row[j].idx >= first && row[j].idx < first + Fs;
        idx_out[n * K + j] = here ? int32_t(row[j].idx - first) : -1;
        val_out[n * K + j] = here ? row[j].val : 0.0f;
      }
    }
  }
}

LatentShard group_latent_shard(const MpiEnv& group, int64_t first, int64_t Fs, int64_t total) {
  LatentShard sh;
  sh.first = first;
  sh.total = total;
  sh.lead = group.rank() == 0;
  const MpiEnv* g = &group;
  sh.merge_top = [g, first, Fs](const int32_t* ii, const float* vi, int64_t N, int64_t W, int64_t K, int32_t* io,
                                float* vo) {
    merge_shard_candidates(gather_shard_candidates(*g, ii, vi, N, W), g->size(), N, W, K, first, Fs, io, vo);
  };
  sh.sum_rows = [g](double* rows, int64_t N, int64_t D) { g->allreduce_sum(rows, N * D); };
  return sh;
}

}  // namespace saepipe
