// The compute kernels of saepipe, declared once. kernels/cpu/<op>.cpp is the reference
// implementation (namespace saepipe::cpu); kernels/cuda/kernels_cuda.hpp declares the same ops
// with the same names and argument order (namespace saepipe::cuda, device pointers, a stream
// last). All matrices are row-major.
//
// Shape legend:  N tokens (rows of a batch), D d_model (= d_in), F latents (= d_sae),
//                K top-k per token.
#pragma once
#include <cstdint>

namespace saepipe::cpu {

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when trans_* is set
// (A is [M,K] or, transposed, [K,M]; B is [K,N] or [N,K]). Backed by BLAS sgemm.
void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
            int64_t ldc);

// Per row of x [N,F]: the k largest values and their column indices, in descending order
// of value; ties go to the lower index. `allowed` (nullable, [F]) restricts the candidates
// to columns with allowed[c] != 0; when fewer than k are allowed, the missing slots get
// idx = -1, val = 0. NaN is never selected. idx, val are [N,K].
void topk_rows(const float* x, int64_t N, int64_t F, int64_t K, const uint8_t* allowed,
               int32_t* idx, float* val);

// out[N,D] = sum_j val[n,j] * W_dec[idx[n,j], :] (+ b_dec when not null). Slots with
// idx = -1 are skipped. W_dec is [F,D].
void sparse_decode(const int32_t* idx, const float* val, int64_t N, int64_t K,
                   const float* W_dec, const float* b_dec, int64_t D, float* out);
// The same sum without b_dec, accumulated in float64: out[N,D] = sum_j val[n,j] * W_dec[idx[n,j], :]
// (partial sums of latent shards then add up to the whole in any order, up to float64 rounding).
void sparse_decode_f64(const int32_t* idx, const float* val, int64_t N, int64_t K,
                       const float* W_dec, int64_t D, double* out);
// out[N,D] = float(sparse_decode_f64's row + b_dec (nullable)), each row summed in float64 in
// cache and rounded once: what sparse_decode_f64 and a rounding pass give, without the [N,D]
// float64 array between them.
void sparse_decode_f64_rounded(const int32_t* idx, const float* val, int64_t N, int64_t K,
                               const float* W_dec, const float* b_dec, int64_t D, float* out);

// Gradient of a sparse code through the decoder. g is dLoss/d(out) [N,D]:
//   dval[n,j]          = dot(W_dec[idx[n,j]], g[n])                    ([N,K], float)
//   grad_W_dec[f, :]  += sum over (n,j) with idx[n,j] = f of val[n,j] * g[n]  ([F,D], double)
// dval is 0 for slots with idx = -1. grad_W_dec accumulation is deterministic (fixed order
// over n), whatever the OpenMP thread count.
void sparse_decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N,
                            int64_t K, const float* W_dec, int64_t D, int64_t F, float* dval,
                            double* grad_W_dec);

// Gradient of the encoder pre-activations restricted to the selected latents. dpre [N,K] is
// dLoss/d(pre[n, idx[n,j]]); xc [N,D] is the encoder input (x - b_dec):
//   grad_W_encT[f, :] += sum over (n,j) with idx[n,j] = f of dpre[n,j] * xc[n]  ([F,D], double)
//   grad_b_enc[f]     += sum of dpre[n,j] over the same (n,j)                 ([F], double)
// Deterministic like sparse_decode_backward.
void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, double* grad_W_encT,
                            double* grad_b_enc);

// Adam with bias correction on a flat parameter vector p[n] with gradient g[n]; m, v are the
// moments, t the step number starting at 1.
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, int64_t t);

// Remove from each row of grad [F,D] its component along the same row of W [F,D]
// (keeps unit-norm decoder rows on their sphere to first order).
void project_out_parallel(const float* W, float* grad, int64_t F, int64_t D);

// Scale every row of W [F,D] to unit L2 norm (rows of zero norm are left alone).
void normalize_rows(float* W, int64_t F, int64_t D);

}  // namespace saepipe::cpu
