// Sparse decoder forward: a row of K (index, value) pairs times the decoder rows.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   idx, val [N,K]; W_dec [F,D]; b_dec [D] (nullable); out [N,D].
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

void sparse_decode_f64(const int32_t* idx, const float* val, int64_t N, int64_t K,
                       const float* W_dec, int64_t D, double* out) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0, "negative size");
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    double* o = out + n * D;
    for (int64_t d = 0; d < D; ++d) o[d] = 0.0;
    for (int64_t j = 0; j < K; ++j) {
      const int32_t f = idx[n * K + j];
      if (f < 0) continue;  // empty slot
      const double a = val[n * K + j];
      const float* w = W_dec + int64_t(f) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] += a * double(w[d]);
    }
  }
}

}  // namespace saepipe::cpu
