// matryoshka (Bussmann et al. 2025; Nabeshima 2024): BatchTopK's selection, and a loss that
// sums the reconstruction error of every nested prefix of the dictionary, latents [0, M_j) for
// j = 1..J. The first latents must then reconstruct on their own, so a general feature keeps its
// own latent instead of being absorbed into the specific latents that co-occur with it.
// With e_j = x_hat_j - y the loss is (1/B) sum_j ||e_j||^2; latent f of group j (M_{j-1} <= f <
// M_j) appears in every prefix i >= j, so dLoss/dz_f = <W_dec,f, G_j> with the suffix sum
// G_j = (2/B) sum_{i >= j} e_i, and dLoss/d b_dec = G_1.
//
// Shape legend: N tokens, O d_out, F d_sae, W selection width, J groups.
//   idx, val, dval [N,W] (latents in increasing f per row, as select_above leaves them);
//   y, skip_out [N,O]; ws.prefix_g [J,N,O]; W_dec, grad_W_dec [F,O].
#include <algorithm>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/sae_internal.hpp"

namespace saepipe {

std::vector<int64_t> matryoshka_groups(const std::vector<int64_t>& prefixes, int64_t d_sae) {
  std::vector<int64_t> m = prefixes;
  if (m.empty() || m.back() != d_sae) m.push_back(d_sae);
  return m;
}

std::vector<int64_t> matryoshka_prefixes_in_force(const std::vector<int64_t>& given, int64_t d_sae) {
  std::vector<int64_t> m = given;
  if (m.empty())
    for (int64_t div : {16, 8, 4, 2}) {
      const int64_t v = d_sae / div;
      if (v >= 1 && (m.empty() || v > m.back())) m.push_back(v);
    }
  return matryoshka_groups(m, d_sae);
}

namespace {

// Sharded: acc [J,N,O] = per group j and row n, the sum over every shard of z W_dec,f for the
// row's slots in group j (this shard's latents first + idx, then summed over the shard group).
void shard_group_sums(const SaeParams& p, const std::vector<int64_t>& M, const int32_t* idx, const float* val,
                      int64_t N, int64_t W, const LatentShard& shard, std::vector<double>& acc) {
  const int64_t J = int64_t(M.size()), O = p.d_out;
  sae_detail::grow(acc, J * N * O);
  std::fill(acc.begin(), acc.begin() + J * N * O, 0.0);
  const float* W_dec = p.W_dec();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < W; ++s) {
      const int32_t f = idx[n * W + s];
      if (f < 0) continue;
      const int64_t j = std::upper_bound(M.begin(), M.end(), shard.first + f) - M.begin();
      const double z = val[n * W + s];
      double* out = acc.data() + (j * N + n) * O;
      for (int64_t d = 0; d < O; ++d) out[d] += z * double(W_dec[int64_t(f) * O + d]);
    }
  shard.sum_rows(acc.data(), J * N, O);  // a collective over the shard group
}

}  // namespace

MatryoshkaSums matryoshka_backward(const SaeParams& p, const std::vector<int64_t>& prefixes, const int32_t* idx,
                                   const float* val, int64_t N, int64_t W, const float* skip_out, const float* y,
                                   int64_t global_batch, SaeWorkspace& ws, float* dval, double* grad_W_dec,
                                   const LatentShard* shard) {
  const int64_t first = shard ? shard->first : 0;
  const std::vector<int64_t> M = matryoshka_groups(prefixes, shard ? shard->total : p.d_sae);
  const int64_t J = int64_t(M.size()), O = p.d_out, F = p.d_sae;
  const double two_over_B = 2.0 / double(global_batch);
  sae_detail::grow(ws.prefix_g, J * N * O);
  float* G = ws.prefix_g.data();
  const float* W_dec = p.W_dec();
  const float* b_dec = p.b_dec();
  std::vector<double> full(static_cast<size_t>(N)), part(static_cast<size_t>(N));
  if (shard) shard_group_sums(p, M, idx, val, N, W, *shard, ws.prefix_acc);
  const double* acc = ws.prefix_acc.data();
#pragma omp parallel
  {
    std::vector<double> cur(static_cast<size_t>(O)), suffix(static_cast<size_t>(O));
    std::vector<double> err(static_cast<size_t>(J * O));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t d = 0; d < O; ++d) cur[d] = double(b_dec[d]) + (skip_out ? double(skip_out[n * O + d]) : 0.0);
      int64_t j = 0, s = 0;
      // Sharded: the group's sums of each prefix group, in order.
      for (; shard && j < J; ++j)
        for (int64_t d = 0; d < O; ++d) {
          cur[d] += acc[(j * N + n) * O + d];
          err[j * O + d] = cur[d] - double(y[n * O + d]);
        }
      // Walk the row's slots in increasing f; at each prefix bound, the error of that prefix.
      while (j < J) {
        const int32_t f = s < W ? idx[n * W + s] : -1;
        if (s < W && f < 0) {
          ++s;
          continue;
        }
        if (s < W && f < M[j]) {
          const double z = val[n * W + s];
          for (int64_t d = 0; d < O; ++d) cur[d] += z * double(W_dec[int64_t(f) * O + d]);
          ++s;
          continue;
        }
        for (int64_t d = 0; d < O; ++d) err[j * O + d] = cur[d] - double(y[n * O + d]);
        ++j;
      }
      double sq_part = 0, sq_full = 0;
      std::fill(suffix.begin(), suffix.end(), 0.0);
      for (int64_t jj = J - 1; jj >= 0; --jj) {
        double sq = 0;
        for (int64_t d = 0; d < O; ++d) {
          const double e = err[jj * O + d];
          sq += e * e;
          suffix[d] += e;
          G[(jj * N + n) * O + d] = float(two_over_B * suffix[d]);
        }
        (jj == J - 1 ? sq_full : sq_part) += sq;
      }
      full[n] = sq_full;
      part[n] = sq_part;
    }
  }
  MatryoshkaSums sums;
  for (int64_t n = 0; n < N; ++n) sums.full_sq += full[n], sums.prefix_sq += part[n];

  // The decoder's backward one group at a time, each with its own suffix sum.
  sae_detail::grow(ws.prefix_idx, N * W);
  std::vector<float> group_dval(static_cast<size_t>(N * W));
  std::fill(dval, dval + N * W, 0.0f);
  for (int64_t j = 0; j < J; ++j) {
    const int64_t lo = (j == 0 ? 0 : M[j - 1]) - first, hi = M[j] - first;  // this shard's latents
    bool any = false;
    for (int64_t s = 0; s < N * W; ++s) {
      const int32_t f = idx[s];
      const bool in = f >= 0 && f >= lo && f < hi;
      ws.prefix_idx[s] = in ? f : -1;
      any = any || in;
    }
    if (!any) continue;
    cpu::sparse_decode_backward(ws.prefix_idx.data(), val, G + j * N * O, N, W, W_dec, O, F, group_dval.data(),
                                grad_W_dec);
    for (int64_t s = 0; s < N * W; ++s)
      if (ws.prefix_idx[s] >= 0) dval[s] = group_dval[s];
  }
  return sums;
}

}  // namespace saepipe
