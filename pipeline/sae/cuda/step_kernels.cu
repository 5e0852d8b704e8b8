// The small kernels of the CUDA training steps (step_kernels.hpp).
#include "pipeline/sae/cuda/step_kernels.hpp"

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/sae/cuda/sae.hpp"

namespace saepipe::cuda {
namespace {

constexpr int kThreads = 256;

// out[n] = ||x_n||^2 (double), one row per block.
__global__ void __launch_bounds__(kThreads) row_sum_squares_kernel(const float* __restrict__ x, int64_t D,
                                                                   double* __restrict__ out) {
  __shared__ double smem[kThreads / 32];
  const int64_t n = blockIdx.x;
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kThreads) ss += double(x[n * D + d]) * double(x[n * D + d]);
  ss = block_sum<kThreads>(ss, smem);
  if (threadIdx.x == 0) out[n] = ss;
}

// *out = sum of x[0, n) in a fixed order (one block).
__global__ void __launch_bounds__(kThreads) total_kernel(const double* __restrict__ x, int64_t n,
                                                         double* __restrict__ out) {
  __shared__ double smem[kThreads / 32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += x[i];
  acc = block_sum<kThreads>(acc, smem);
  if (threadIdx.x == 0) *out = acc;
}

// Fire counts as doubles, and the scalars in the CPU's order [sse, active, aux, sum x^2,
// penalty] (sum x^2 is written in place before).
__global__ void pack_kernel(const unsigned long long* __restrict__ fire, int64_t F, const double* __restrict__ sums,
                            double* __restrict__ out_fire, double* __restrict__ out_scalars) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f < F; f += int64_t(gridDim.x) * blockDim.x)
    out_fire[f] = double(fire[f]);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    out_scalars[0] = sums[kSumSqErr];
    out_scalars[1] = sums[kSumActive];
    out_scalars[2] = sums[kSumAuxSqErr];
    out_scalars[4] = sums[kSumPenalty];
  }
}

__global__ void __launch_bounds__(kThreads) norm_partials_kernel(const double* __restrict__ g, int64_t n,
                                                                 double* __restrict__ partial) {
  __shared__ double smem[kThreads / 32];
  double acc = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(kNormBlocks) * kThreads)
    acc += g[i] * g[i];
  acc = block_sum<kThreads>(acc, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// clip = grad_clip / ||g|| when the norm exceeds grad_clip, else 1 (as the CPU step).
__global__ void __launch_bounds__(kThreads) clip_factor_kernel(const double* __restrict__ partial, int64_t n,
                                                               double grad_clip, double* __restrict__ clip) {
  __shared__ double smem[kThreads / 32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += partial[i];
  acc = block_sum<kThreads>(acc, smem);
  if (threadIdx.x == 0) {
    const double norm = sqrt(acc);
    *clip = norm > grad_clip ? grad_clip / norm : 1.0;
  }
}

__global__ void to_float_kernel(const double* __restrict__ g, int64_t n, const double* __restrict__ clip,
                                float* __restrict__ grad) {
  const double c = clip ? *clip : 1.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    grad[i] = float(g[i] * c);
}

}  // namespace

GemmPrecision gemm_precision(const std::string& p) {
  if (p == "fp32") return GemmPrecision::FP32;
  if (p == "bf16") return GemmPrecision::BF16;
  user_error("train.precision \"" + p + "\" is not one of fp32, bf16");
}

void sum_of_squares(const float* x, int64_t N, int64_t D, double* rows, double* out, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && N <= int64_t(INT32_MAX), "row count out of range for one launch");
  if (N == 0) return;
  row_sum_squares_kernel<<<unsigned(N), kThreads, 0, stream>>>(x, D, rows);
  SAE_CUDA_LAUNCH_CHECK();
  sum_doubles(rows, N, out, stream);
}

void sum_doubles(const double* x, int64_t n, double* out, cudaStream_t stream) {
  total_kernel<<<1, kThreads, 0, stream>>>(x, n, out);
  SAE_CUDA_LAUNCH_CHECK();
}

void pack_step_tail(const unsigned long long* fire, int64_t F, const double* sums, double* out_fire,
                    double* out_scalars, cudaStream_t stream) {
  pack_kernel<<<grid_for(F, kThreads), kThreads, 0, stream>>>(fire, F, sums, out_fire, out_scalars);
  SAE_CUDA_LAUNCH_CHECK();
}

void squared_norm_partials(const double* g, int64_t n, double* partial, cudaStream_t stream) {
  norm_partials_kernel<<<kNormBlocks, kThreads, 0, stream>>>(g, n, partial);
  SAE_CUDA_LAUNCH_CHECK();
}

void clip_factor(const double* partial, int64_t n, double grad_clip, double* clip, cudaStream_t stream) {
  clip_factor_kernel<<<1, kThreads, 0, stream>>>(partial, n, grad_clip, clip);
  SAE_CUDA_LAUNCH_CHECK();
}

void to_float_scaled(const double* g, int64_t n, const double* clip, float* grad, cudaStream_t stream) {
  if (n == 0) return;
  to_float_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(g, n, clip, grad);
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
