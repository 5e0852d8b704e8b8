// Backward of the sparse decoder and of the selected encoder pre-activations.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   idx [N,K] (int32, -1 = empty slot); val, dval, dpre [N,K]; g, xc [N,D];
//   W_dec [F,D]; grad_W_dec, grad_W_encT [F,D] (double); grad_b_enc [F] (double).
//
// The per-latent gradient rows are sums over the tokens that selected the latent. To make
// them independent of the thread count, the (n, j) pairs are first bucketed by latent with a
// counting sort (a CSR "latent -> pairs in increasing n"), then threads split the latents and
// each latent row is summed serially in increasing n. No atomics, no per-thread partials.
#include <algorithm>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cpu {
namespace {

// pairs[start[f] .. start[f+1]) are the flat slots n*K + j with idx = f, increasing n.
struct LatentLists {
  std::vector<int64_t> start;  // [F+1]
  std::vector<int64_t> pairs;  // [number of non-empty slots]
};

LatentLists bucket_by_latent(const int32_t* idx, int64_t N, int64_t K, int64_t F) {
  LatentLists L;
  L.start.assign(size_t(F + 1), 0);
  const int64_t slots = N * K;
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t f = idx[s];
    if (f < 0) continue;
    if (f >= F) internal_error("latent index " + std::to_string(f) + " out of range [0," +
                               std::to_string(F) + ")");
    ++L.start[size_t(f) + 1];
  }
  for (int64_t f = 0; f < F; ++f) L.start[f + 1] += L.start[f];
  L.pairs.resize(size_t(L.start[F]));
  std::vector<int64_t> fill(L.start.begin(), L.start.end() - 1);
  for (int64_t s = 0; s < slots; ++s) {  // increasing s, hence increasing n per latent
    const int32_t f = idx[s];
    if (f >= 0) L.pairs[size_t(fill[f]++)] = s;
  }
  return L;
}

// out[d] += a[0] * r[0][d], then += a[1] * r[1][d], ... for the M rows, with out[d] in a register
// across them: per element the same multiplies and adds in the same order as one row at a time
// (no FMA contraction: -ffp-contract=off), an M-th of the loads and stores of out.
template <int M>
inline __attribute__((always_inline)) void add_rows_in_register(double* out, const double* a, const float* const* r,
                                                               int64_t D) {
  for (int64_t d = 0; d < D; ++d) {
    double v = out[d];
    for (int i = 0; i < M; ++i) v += a[i] * double(r[i][d]);
    out[d] = v;
  }
}

// The same for m <= 8 rows: 8 at once, else the first 4 at once and the rest one by one. AVX2 /
// AVX-512 clones (the library targets any x86-64). A function of its own: GCC outlines OpenMP
// regions before cloning.
__attribute__((target_clones("avx512f", "avx2", "default"))) void add_scaled_rows(double* out, const double* a,
                                                                                 const float* const* r, int m,
                                                                                 int64_t D) {
  if (m == 8) return add_rows_in_register<8>(out, a, r, D);
  int i = 0;
  if (m >= 4) {
    add_rows_in_register<4>(out, a, r, D);
    i = 4;
  }
  for (; i < m; ++i) add_rows_in_register<1>(out, a + i, r + i, D);
}

// sum_d a[d] b[d] in 32 fixed lanes (lane d mod 32) added as a fixed tree: the order is the
// source's, not the vector width's, so the AVX2 / AVX-512 clones give the default clone's bits
// (the library targets any x86-64; `omp simd` had run this dot 4 lanes wide in one chain).
__attribute__((target_clones("avx512f", "avx2", "default"))) float lane_dot(const float* a, const float* b,
                                                                           int64_t D) {
  constexpr int kLanes = 32;
  float lane[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += a[d + j] * b[d + j];
  for (; d < D; ++d) lane[d % kLanes] += a[d] * b[d];
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lane[j] += lane[j + w];
  return lane[0];
}

// grad[f, :] += sum over pairs s of coef[s] * rows[s / K, :], in increasing s.
void accumulate_rows(const LatentLists& L, const float* coef, const float* rows, int64_t K,
                     int64_t D, int64_t F, double* grad, double* grad_sum) {
#pragma omp parallel for schedule(dynamic, 32)
  for (int64_t f = 0; f < F; ++f) {
    const int64_t b = L.start[f], e = L.start[f + 1];
    if (b == e) continue;
    double* gr = grad + f * D;
    double s_coef = 0.0;
    for (int64_t p = b; p < e; p += 8) {
      const int m = int(std::min<int64_t>(8, e - p));
      double a[8];
      const float* r[8];
      for (int i = 0; i < m; ++i) {
        const int64_t s = L.pairs[p + i];
        a[i] = coef[s];
        r[i] = rows + (s / K) * D;
        s_coef += a[i];
      }
      add_scaled_rows(gr, a, r, m, D);
    }
    if (grad_sum) grad_sum[f] += s_coef;
  }
}

}  // namespace

void sparse_decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N,
                            int64_t K, const float* W_dec, int64_t D, int64_t F, float* dval,
                            double* grad_W_dec) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0 && F >= 0, "negative size");
  const LatentLists L = bucket_by_latent(idx, N, K, F);  // also validates idx
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* gn = g + n * D;
    for (int64_t j = 0; j < K; ++j) {
      const int32_t f = idx[n * K + j];
      if (f < 0) {
        dval[n * K + j] = 0.0f;
        continue;
      }
      dval[n * K + j] = lane_dot(W_dec + int64_t(f) * D, gn, D);
    }
  }
  accumulate_rows(L, val, g, K, D, F, grad_W_dec, nullptr);
}

void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, double* grad_W_encT,
                            double* grad_b_enc) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0 && F >= 0, "negative size");
  const LatentLists L = bucket_by_latent(idx, N, K, F);
  accumulate_rows(L, dpre, xc, K, D, F, grad_W_encT, grad_b_enc);
}

}  // namespace saepipe::cpu
