#include "pipeline/stats/decoder_neighbours.hpp"

#include <mpi.h>

#include <algorithm>
#include <functional>
#include <numeric>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe {

namespace {

constexpr int64_t kBlock = 256;

struct Neighbour {
  float cos;
  int32_t idx;
};
bool closer(const Neighbour& a, const Neighbour& b) { return a.cos > b.cos || (a.cos == b.cos && a.idx < b.idx); }

// Rows dec [Fm, D] (normalised) are latents first.. ; the dictionary's F = S * Fm rows come in
// S blocks (block(s): [Fm, D] normalised, the latents s * Fm..). best [Fm, K]: running best.
void neighbours_over_blocks(const float* dec, int64_t Fm, int64_t first, int64_t D, int64_t K, int S,
                            const std::function<const float*(int)>& block, std::vector<int32_t>& index,
                            std::vector<float>& cosine) {
  std::vector<Neighbour> best(static_cast<size_t>(Fm * K));
  std::vector<int32_t> kept(static_cast<size_t>(Fm), 0);
  std::vector<float> cos(static_cast<size_t>(std::min(kBlock, Fm) * Fm));
  for (int s = 0; s < S; ++s) {
    const float* other = block(s);
    const int64_t other_first = int64_t(s) * Fm;
    for (int64_t r0 = 0; r0 < Fm; r0 += kBlock) {
      const int64_t nb = std::min(kBlock, Fm - r0);
      for (int64_t c0 = 0; c0 < Fm; c0 += kBlock)
        cpu::matmul(false, true, nb, std::min(kBlock, Fm - c0), D, 1.0f, dec + r0 * D, D, other + c0 * D, D, 0.0f,
                    cos.data() + c0, Fm);
#pragma omp parallel
      {
        std::vector<Neighbour> row;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t f = first + r0 + i;
          const float* c = cos.data() + i * Fm;
          Neighbour* b = best.data() + (r0 + i) * K;
          int32_t& n = kept[size_t(r0 + i)];
          row.assign(b, b + n);
          for (int64_t j = 0; j < Fm; ++j)
            if (other_first + j != f) row.push_back(Neighbour{c[j], int32_t(other_first + j)});
          const int64_t k = std::min<int64_t>(K, int64_t(row.size()));
          std::partial_sort(row.begin(), row.begin() + k, row.end(), closer);
          std::copy_n(row.begin(), k, b);
          n = int32_t(k);
        }
      }
    }
  }
  index.assign(size_t(Fm * K), -1);
  cosine.assign(size_t(Fm * K), 0.0f);
  for (int64_t f = 0; f < Fm; ++f)
    for (int64_t j = 0; j < kept[size_t(f)]; ++j) {
      index[size_t(f * K + j)] = best[size_t(f * K + j)].idx;
      cosine[size_t(f * K + j)] = best[size_t(f * K + j)].cos;
    }
}

}  // namespace

void decoder_neighbours(const float* W_dec, int64_t F, int64_t D, int64_t K, std::vector<int32_t>& index,
                        std::vector<float>& cosine) {
  index.assign(size_t(F * K), -1);
  cosine.assign(size_t(F * K), 0.0f);
  if (K == 0) return;
  std::vector<float> dec(W_dec, W_dec + F * D);
  cpu::normalize_rows(dec.data(), F, D);
  neighbours_over_blocks(dec.data(), F, 0, D, K, 1, [&](int) { return dec.data(); }, index, cosine);
}

void decoder_neighbours(const float* W_dec, int64_t Fs, int64_t D, int64_t K, const MpiEnv& shards,
                        std::vector<int32_t>& index, std::vector<float>& cosine) {
  index.assign(size_t(Fs * K), -1);
  cosine.assign(size_t(Fs * K), 0.0f);
  if (K == 0) return;
  std::vector<float> dec(W_dec, W_dec + Fs * D), other(shards.size() > 1 ? static_cast<size_t>(Fs * D) : 0);
  cpu::normalize_rows(dec.data(), Fs, D);
  const auto block = [&](int s) -> const float* {
    if (shards.size() == 1) return dec.data();
    if (s == shards.rank()) std::copy(dec.begin(), dec.end(), other.begin());
    constexpr int64_t kPiece = int64_t(1) << 26;  // floats per MPI_Bcast (counts are int)
    for (int64_t off = 0; off < Fs * D; off += kPiece)
      SAE_MPI_CHECK(MPI_Bcast(other.data() + off, int(std::min(kPiece, Fs * D - off)), MPI_FLOAT, s, shards.comm()));
    return other.data();
  };
  neighbours_over_blocks(dec.data(), Fs, int64_t(shards.rank()) * Fs, D, K, shards.size(), block, index, cosine);
}

}  // namespace saepipe
