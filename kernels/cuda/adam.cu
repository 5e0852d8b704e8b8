// Optimiser kernels (Adam, the decoder-gradient projection, row renormalisation, and the three
// fused for unit-norm decoder rows) and the small elementwise / column-sum helpers of the step.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   p, g, m, v [n] (flat parameter vector); W, grad [F,D] (decoder rows); x, xc [N,D].
//
// Arithmetic follows kernels/cpu/adam.cpp operation by operation with explicitly rounded
// intrinsics (__fmul_rn, __fadd_rn, ...), which nvcc never contracts into FMAs. adam_step
// therefore matches the CPU to the last bit; the row kernels sum their dot products with a
// fixed tree instead of the CPU's order, so they agree to double rounding before the final
// float rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {
namespace {

constexpr int kRowThreads = 256;

__device__ __forceinline__ double block_sum(double v, double* smem) { return cuda::block_sum<kRowThreads>(v, smem); }

struct AdamCoef {
  float step, inv_sqrt_bc2, b1, b2, c1, c2, eps;
};

AdamCoef adam_coef(float lr, float beta1, float beta2, float eps, int64_t t) {
  SAE_ASSERT(t >= 1, "Adam step number starts at 1");
  // As the CPU: bias corrections in double (beta2^t is close to 1 for many steps).
  const double bc1 = 1.0 - std::pow(double(beta1), double(t));
  const double bc2 = 1.0 - std::pow(double(beta2), double(t));
  return {float(double(lr) / bc1), float(1.0 / std::sqrt(bc2)), beta1, beta2, 1.0f - beta1, 1.0f - beta2, eps};
}

// One Adam update of p with gradient gi; m, v updated in place. The CPU's expression
//   m = b1*m + c1*g;  v = b2*v + c2*g*g;  p -= step*m / (sqrt(v)*inv_sqrt_bc2 + eps)
__device__ __forceinline__ float adam_update(float p, float gi, float& m, float& v, const AdamCoef& a) {
  const float mi = __fadd_rn(__fmul_rn(a.b1, m), __fmul_rn(a.c1, gi));
  const float vi = __fadd_rn(__fmul_rn(a.b2, v), __fmul_rn(__fmul_rn(a.c2, gi), gi));
  m = mi;
  v = vi;
  return __fsub_rn(p, __fdiv_rn(__fmul_rn(a.step, mi), __fadd_rn(__fmul_rn(__fsqrt_rn(vi), a.inv_sqrt_bc2), a.eps)));
}

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, int64_t n, AdamCoef a) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float mi = m[i], vi = v[i];
    p[i] = adam_update(p[i], g[i], mi, vi, a);
    m[i] = mi;
    v[i] = vi;
  }
}

// c = <w, g> / <w, w> for the block's row (0 when w = 0), in double.
__device__ double projection_coef(const float* w, const float* gr, int64_t D, double* smem) {
  double wg = 0.0, ww = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kRowThreads) {
    wg += __dmul_rn(double(w[d]), double(gr[d]));
    ww += __dmul_rn(double(w[d]), double(w[d]));
  }
  wg = block_sum(wg, smem);
  ww = block_sum(ww, smem);
  return ww == 0.0 ? 0.0 : wg / ww;
}

__global__ void __launch_bounds__(kRowThreads) project_out_kernel(const float* __restrict__ W, float* __restrict__ grad,
                                                                  int64_t D) {
  __shared__ double smem[kRowThreads / 32];
  const int64_t f = blockIdx.x;
  const float* w = W + f * D;
  float* gr = grad + f * D;
  const double c = projection_coef(w, gr, D, smem);
  if (c == 0.0) return;  // no direction to project out (or nothing along it)
  for (int64_t d = threadIdx.x; d < D; d += kRowThreads)
    gr[d] = float(__dsub_rn(double(gr[d]), __dmul_rn(c, double(w[d]))));
}

__global__ void __launch_bounds__(kRowThreads) normalize_rows_kernel(float* __restrict__ W, int64_t D) {
  __shared__ double smem[kRowThreads / 32];
  float* w = W + int64_t(blockIdx.x) * D;
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kRowThreads) ss += __dmul_rn(double(w[d]), double(w[d]));
  ss = block_sum(ss, smem);
  if (ss == 0.0) return;
  const double inv = 1.0 / sqrt(ss);
  for (int64_t d = threadIdx.x; d < D; d += kRowThreads) w[d] = float(__dmul_rn(double(w[d]), inv));
}

// project_out + Adam + renormalise, one row per block. Each thread rescales the elements it
// updated itself, so the only synchronisation needed is inside block_sum.
__global__ void __launch_bounds__(kRowThreads) adam_unit_rows_kernel(float* __restrict__ W, float* __restrict__ grad,
                                                                     float* __restrict__ m, float* __restrict__ v,
                                                                     int64_t D, AdamCoef a) {
  __shared__ double smem[kRowThreads / 32];
  const int64_t f = blockIdx.x;
  float* w = W + f * D;
  float* gr = grad + f * D;
  float* mr = m + f * D;
  float* vr = v + f * D;
  const double c = projection_coef(w, gr, D, smem);
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kRowThreads) {
    const float gp = c == 0.0 ? gr[d] : float(__dsub_rn(double(gr[d]), __dmul_rn(c, double(w[d]))));
    gr[d] = gp;
    float mi = mr[d], vi = vr[d];
    const float p = adam_update(w[d], gp, mi, vi, a);
    mr[d] = mi;
    vr[d] = vi;
    w[d] = p;
    ss += __dmul_rn(double(p), double(p));
  }
  ss = block_sum(ss, smem);
  if (ss == 0.0) return;
  const double inv = 1.0 / sqrt(ss);
  for (int64_t d = threadIdx.x; d < D; d += kRowThreads) w[d] = float(__dmul_rn(double(w[d]), inv));
}

__global__ void center_rows_kernel(const float* __restrict__ x, const float* __restrict__ b, int64_t N, int64_t D,
                                   float* __restrict__ xc, __nv_bfloat16* __restrict__ xc_bf16) {
  const int64_t total = N * D;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float e = __fsub_rn(x[i], b[i % D]);
    xc[i] = e;
    if (xc_bf16) xc_bf16[i] = __float2bfloat16_rn(e);
  }
}

constexpr int kSumRows = 256;  // rows per partial of weighted_column_sums

// partial[rb, d] = sum over rows r of block rb (increasing r) of w[r] * a[r, d]; the row
// blocks stride over gridDim.y (at most 65535 there).
__global__ void column_partials_kernel(const double* __restrict__ w, const float* __restrict__ a, int64_t R, int64_t D,
                                       int64_t blocks, double* __restrict__ partial) {
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= D) return;
  for (int64_t rb = blockIdx.y; rb < blocks; rb += gridDim.y) {
    const int64_t r0 = rb * kSumRows, r1 = r0 + kSumRows < R ? r0 + kSumRows : R;
    double acc = 0.0;
    for (int64_t r = r0; r < r1; ++r) {
      const double wr = w ? w[r] : 1.0;
      if (wr != 0.0) acc += wr * double(a[r * D + d]);
    }
    partial[rb * D + d] = acc;
  }
}

__global__ void column_finish_kernel(const double* __restrict__ partial, int64_t blocks, int64_t D, double scale,
                                     double* __restrict__ out) {
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= D) return;
  double acc = 0.0;
  for (int64_t rb = 0; rb < blocks; ++rb) acc += partial[rb * D + d];
  out[d] += scale * acc;
}

template <class T>
__global__ void add_into_kernel(const double* __restrict__ x, int64_t n, T* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = T(double(out[i]) + x[i]);
}

void check_rows(int64_t F, int64_t D) {
  SAE_ASSERT(F >= 0 && D >= 0, "negative size");
  SAE_ASSERT(F <= int64_t(INT32_MAX), "too many rows for one launch");
}

}  // namespace

void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, int64_t t, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative size");
  const AdamCoef a = adam_coef(lr, beta1, beta2, eps, t);
  if (n == 0) return;
  adam_kernel<<<grid_for(n, 256), 256, 0, stream>>>(p, g, m, v, n, a);
  SAE_CUDA_LAUNCH_CHECK();
}

void project_out_parallel(const float* W, float* grad, int64_t F, int64_t D, cudaStream_t stream) {
  check_rows(F, D);
  if (F == 0 || D == 0) return;
  project_out_kernel<<<unsigned(F), kRowThreads, 0, stream>>>(W, grad, D);
  SAE_CUDA_LAUNCH_CHECK();
}

void normalize_rows(float* W, int64_t F, int64_t D, cudaStream_t stream) {
  check_rows(F, D);
  if (F == 0 || D == 0) return;
  normalize_rows_kernel<<<unsigned(F), kRowThreads, 0, stream>>>(W, D);
  SAE_CUDA_LAUNCH_CHECK();
}

void adam_step_unit_rows(float* W, float* grad, float* m, float* v, int64_t F, int64_t D,
                         float lr, float beta1, float beta2, float eps, int64_t t,
                         cudaStream_t stream) {
  check_rows(F, D);
  const AdamCoef a = adam_coef(lr, beta1, beta2, eps, t);
  if (F == 0 || D == 0) return;
  adam_unit_rows_kernel<<<unsigned(F), kRowThreads, 0, stream>>>(W, grad, m, v, D, a);
  SAE_CUDA_LAUNCH_CHECK();
}

void center_rows(const float* x, const float* b, int64_t N, int64_t D, float* xc,
                 __nv_bfloat16* xc_bf16, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && D >= 0, "negative size");
  if (N == 0 || D == 0) return;
  center_rows_kernel<<<grid_for(N * D, 256), 256, 0, stream>>>(x, b, N, D, xc, xc_bf16);
  SAE_CUDA_LAUNCH_CHECK();
}

void weighted_column_sums(const double* w, const float* a, int64_t R, int64_t D, double scale,
                          double* out, cudaStream_t stream) {
  SAE_ASSERT(R >= 0 && D >= 0, "negative size");
  if (R == 0 || D == 0) return;
  const int64_t blocks = (R + kSumRows - 1) / kSumRows;
  double* partial = nullptr;
  SAE_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), sizeof(double) * size_t(blocks * D), stream));
  const dim3 grid(unsigned((D + 127) / 128), unsigned(std::min<int64_t>(blocks, 65535)));
  column_partials_kernel<<<grid, 128, 0, stream>>>(w, a, R, D, blocks, partial);
  SAE_CUDA_LAUNCH_CHECK();
  column_finish_kernel<<<unsigned((D + 127) / 128), 128, 0, stream>>>(partial, blocks, D, scale, out);
  SAE_CUDA_LAUNCH_CHECK();
  SAE_CUDA_CHECK(cudaFreeAsync(partial, stream));
}

void add_into(const double* x, int64_t n, float* out, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative size");
  if (n == 0) return;
  add_into_kernel<float><<<grid_for(n, 256), 256, 0, stream>>>(x, n, out);
  SAE_CUDA_LAUNCH_CHECK();
}

void add_into(const double* x, int64_t n, double* out, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative size");
  if (n == 0) return;
  add_into_kernel<double><<<grid_for(n, 256), 256, 0, stream>>>(x, n, out);
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
