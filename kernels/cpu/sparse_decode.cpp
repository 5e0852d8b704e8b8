// Sparse decoder forward: a row of K (index, value) pairs times the decoder rows.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   idx, val [N,K]; W_dec [F,D]; b_dec [D] (nullable); out [N,D].
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cpu {

void sparse_decode(const int32_t* idx, const float* val, int64_t N, int64_t K,
                   const float* W_dec, const float* b_dec, int64_t D, float* out) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0, "negative size");
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* o = out + n * D;
    if (b_dec) {
      for (int64_t d = 0; d < D; ++d) o[d] = b_dec[d];
    } else {
      for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
    }
    for (int64_t j = 0; j < K; ++j) {
      const int32_t f = idx[n * K + j];
      if (f < 0) continue;  // empty slot
      const float a = val[n * K + j];
      const float* w = W_dec + int64_t(f) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] += a * w[d];
    }
  }
}

namespace {
// One row of sparse_decode_f64: o[D] = sum_j val[j] * W_dec[idx[j], :] in float64, in j order.
// AVX2 / AVX-512 clones: each element's sum is the same at any vector width.
__attribute__((target_clones("avx512f", "avx2", "default"))) void decode_row_f64(const int32_t* idx, const float* val, int64_t K,
                                                                               const float* W_dec, int64_t D, double* o) {
  for (int64_t d = 0; d < D; ++d) o[d] = 0.0;
  for (int64_t j = 0; j < K; ++j) {
    const int32_t f = idx[j];
    if (f < 0) continue;  // empty slot
    const double a = val[j];
    const float* w = W_dec + int64_t(f) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] += a * double(w[d]);
  }
}
}  // namespace

void sparse_decode_f64(const int32_t* idx, const float* val, int64_t N, int64_t K,
                       const float* W_dec, int64_t D, double* out) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0, "negative size");
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) decode_row_f64(idx + n * K, val + n * K, K, W_dec, D, out + n * D);
}

void sparse_decode_f64_rounded(const int32_t* idx, const float* val, int64_t N, int64_t K,
                               const float* W_dec, const float* b_dec, int64_t D, float* out) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0, "negative size");
#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(D));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      decode_row_f64(idx + n * K, val + n * K, K, W_dec, D, acc.data());
      float* o = out + n * D;
      for (int64_t d = 0; d < D; ++d) o[d] = float(acc[d] + (b_dec ? double(b_dec[d]) : 0.0));
    }
  }
}

}  // namespace saepipe::cpu
