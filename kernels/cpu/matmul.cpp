// Dense matmul through BLAS sgemm (OpenBLAS), row-major.
//
// Shape legend: N tokens, D d_model, F latents, K top-k. The generic sgemm below uses
// BLAS names instead: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
#include <cblas.h>

#include <climits>
#include <string>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cpu {

void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
            int64_t ldc) {
  SAE_ASSERT(M >= 0 && N >= 0 && K >= 0, "negative matmul dimension");
  // Row-major leading dimensions: at least the number of stored columns.
  SAE_ASSERT(lda >= (trans_a ? M : K) && lda >= 1, "lda too small");
  SAE_ASSERT(ldb >= (trans_b ? K : N) && ldb >= 1, "ldb too small");
  SAE_ASSERT(ldc >= N && ldc >= 1, "ldc too small");
  // The BLAS interface takes 32-bit ints (Debian's OpenBLAS is built without INTERFACE64).
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    SAE_ASSERT(v <= INT_MAX, "matmul dimension " + std::to_string(v) + " exceeds the BLAS int range");
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), alpha, A, int(lda),
              B, int(ldb), beta, C, int(ldc));
}

}  // namespace saepipe::cpu
