// The architecture-specific pieces of the SAE on the GPU (architectures.hpp).
//
// Shape legend: N tokens, D d_in, F d_sae, W selection width.
//   pre [N,F]; idx, val, dval [N,W]; W_dec, grad_W_dec [F,D]; g [N,D]; count [N].
#include "pipeline/sae/cuda/architectures.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
T* scratch(int64_t n, cudaStream_t stream) {
  void* p = nullptr;
  SAE_CUDA_CHECK(cudaMallocAsync(&p, sizeof(T) * size_t(n > 0 ? n : 1), stream));
  return static_cast<T*>(p);
}

__device__ __forceinline__ bool above(float v, const float* log_thr, float thr_all, int64_t f) {
  return v > 0.0f && v > (log_thr ? expf(log_thr[f]) : thr_all);
}

// count[n] = selected latents of row n; *max_count = the largest (at least 1, preset).
__global__ void __launch_bounds__(kThreads) count_above_kernel(const float* __restrict__ pre, int64_t F,
                                                               const float* __restrict__ log_thr, float thr_all,
                                                               int32_t* __restrict__ count, int* __restrict__ max_count) {
  __shared__ int smem[kThreads / 32];
  const int64_t n = blockIdx.x;
  const float* row = pre + n * F;
  int c = 0;
  for (int64_t f = threadIdx.x; f < F; f += kThreads) c += above(row[f], log_thr, thr_all, f);
  c = warp_sum(c);
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    int t = 0;
    for (int w = 0; w < kThreads / 32; ++w) t += smem[w];
    count[n] = t;
    atomicMax(max_count, t);
  }
}

// Row n's selected latents in increasing f, then empty slots: tiles of kThreads columns, each
// compacted in order by a block-wide prefix count of the flags.
__global__ void __launch_bounds__(kThreads) fill_above_kernel(const float* __restrict__ pre, int64_t F,
                                                              const float* __restrict__ log_thr, float thr_all,
                                                              int64_t W, int32_t* __restrict__ idx,
                                                              float* __restrict__ val) {
  __shared__ int warp_total[kThreads / 32];
  __shared__ int warp_base[kThreads / 32 + 1];
  const int64_t n = blockIdx.x;
  const float* row = pre + n * F;
  int32_t* oi = idx + n * W;
  float* ov = val + n * W;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int64_t base = 0;  // slots written so far (the same in every thread)
  for (int64_t f0 = 0; f0 < F; f0 += kThreads) {
    const int64_t f = f0 + threadIdx.x;
    const float v = f < F ? row[f] : 0.0f;
    const bool on = f < F && above(v, log_thr, thr_all, f);
    const unsigned mask = __ballot_sync(0xffffffffu, on);
    if (lane == 0) warp_total[warp] = __popc(mask);
    __syncthreads();
    if (threadIdx.x == 0) {
      warp_base[0] = 0;
      for (int w = 0; w < kThreads / 32; ++w) warp_base[w + 1] = warp_base[w] + warp_total[w];
    }
    __syncthreads();
    if (on) {
      const int64_t s = base + warp_base[warp] + __popc(mask & ((1u << lane) - 1u));
      oi[s] = int32_t(f);
      ov[s] = v;
    }
    base += warp_base[kThreads / 32];
    __syncthreads();  // warp_base is rewritten by the next tile
  }
  for (int64_t s = base + threadIdx.x; s < W; s += kThreads) {
    oi[s] = -1;
    ov[s] = 0.0f;
  }
}

// The radix select's histogram: positive values whose bits >> shift_hi == prefix (shift_hi
// 31: no prefix) counted by (bits >> shift_lo) & (bins - 1).
__global__ void __launch_bounds__(kThreads) positive_histogram_kernel(const float* __restrict__ x, int64_t n,
                                                                      int shift_hi, uint32_t prefix, int shift_lo,
                                                                      int bins, unsigned long long* __restrict__ hist) {
  __shared__ unsigned int local[2048];
  for (int b = threadIdx.x; b < bins; b += kThreads) local[b] = 0;
  __syncthreads();
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const float v = x[i];
    if (!(v > 0.0f)) continue;  // NaN and non-positive values are never candidates
    const uint32_t u = __float_as_uint(v);
    if (shift_hi < 31 && (u >> shift_hi) != prefix) continue;
    atomicAdd(&local[(u >> shift_lo) & uint32_t(bins - 1)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += kThreads)
    if (local[b]) atomicAdd(&hist[b], (unsigned long long)local[b]);
}

// norm[f] = ||W[f]|| (double, the CPU's order per row: a fixed tree here).
__global__ void __launch_bounds__(kThreads) row_norms_kernel(const float* __restrict__ W, int64_t D,
                                                             double* __restrict__ norm) {
  __shared__ double smem[kThreads / 32];
  const int64_t f = blockIdx.x;
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kThreads) ss += double(W[f * D + d]) * double(W[f * D + d]);
  ss = block_sum<kThreads>(ss, smem);
  if (threadIdx.x == 0) norm[f] = sqrt(ss);
}

__global__ void relu_dval_kernel(const int32_t* __restrict__ idx, int64_t NW, const double* __restrict__ norm,
                                 double c, float* __restrict__ dval) {
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < NW; s += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[s];
    if (f >= 0) dval[s] = float(double(dval[s]) + c * norm[f]);
  }
}

// grad_W_dec[f] += (c zsum[f] / norm[f]) W_dec[f] (latents with zsum and norm non-zero).
__global__ void __launch_bounds__(kThreads) relu_decoder_kernel(const float* __restrict__ W, int64_t D,
                                                                const double* __restrict__ norm,
                                                                const double* __restrict__ zsum, double c,
                                                                double* __restrict__ grad) {
  const int64_t f = blockIdx.x;
  if (zsum[f] == 0.0 || norm[f] == 0.0) return;
  const double a = c * zsum[f] / norm[f];
  for (int64_t d = threadIdx.x; d < D; d += kThreads) grad[f * D + d] += a * double(W[f * D + d]);
}

// *penalty += coef * sum_f zsum[f] norm[f], one block, fixed order.
__global__ void __launch_bounds__(kThreads) relu_penalty_kernel(const double* __restrict__ zsum,
                                                                const double* __restrict__ norm, int64_t F, double coef,
                                                                double* __restrict__ penalty) {
  __shared__ double smem[kThreads / 32];
  double acc = 0.0;
  for (int64_t f = threadIdx.x; f < F; f += kThreads) acc += zsum[f] * norm[f];
  acc = block_sum<kThreads>(acc, smem);
  if (threadIdx.x == 0) *penalty += coef * acc;
}

// One thread per latent: its rows in increasing n (deterministic), as jumprelu_backward.
__global__ void jumprelu_kernel(const float* __restrict__ pre, const float* __restrict__ g,
                                const float* __restrict__ W, const float* __restrict__ log_thr, int64_t N, int64_t D,
                                int64_t F, double inv_eps, double l0_per_token, double* __restrict__ grad) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f < F; f += int64_t(gridDim.x) * blockDim.x) {
    const double th = exp(double(log_thr[f]));
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const double u = (double(pre[n * F + f]) - th) * inv_eps;
      if (!(fabs(u) < 0.5)) continue;
      double dz = 0.0;  // dLoss/dz_nf = <W_dec,f, g_n>
      for (int64_t d = 0; d < D; ++d) dz += double(W[f * D + d]) * double(g[n * D + d]);
      acc += dz * (-th * inv_eps) + l0_per_token * (-inv_eps);
    }
    grad[f] += th * acc;
  }
}

}  // namespace

int64_t count_above(const float* pre, int64_t N, int64_t F, const float* log_threshold, float thr_all, int32_t* count,
                    cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && F >= 0 && F < int64_t(INT32_MAX), "count_above: bad shape");
  if (N == 0) return 1;
  int* max_count = scratch<int>(1, stream);
  const int one = 1;
  SAE_CUDA_CHECK(cudaMemcpyAsync(max_count, &one, sizeof one, cudaMemcpyHostToDevice, stream));
  count_above_kernel<<<unsigned(N), kThreads, 0, stream>>>(pre, F, log_threshold, thr_all, count, max_count);
  SAE_CUDA_LAUNCH_CHECK();
  int host = 0;
  SAE_CUDA_CHECK(cudaMemcpyAsync(&host, max_count, sizeof host, cudaMemcpyDeviceToHost, stream));
  SAE_CUDA_CHECK(cudaFreeAsync(max_count, stream));
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

void fill_above(const float* pre, int64_t N, int64_t F, const float* log_threshold, float thr_all, int64_t W,
                int32_t* idx, float* val, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && F >= 0 && W >= 1, "fill_above: bad shape");
  if (N == 0) return;
  fill_above_kernel<<<unsigned(N), kThreads, 0, stream>>>(pre, F, log_threshold, thr_all, W, idx, val);
  SAE_CUDA_LAUNCH_CHECK();
}

float kth_largest_positive(const float* pre, int64_t N, int64_t F, int64_t kth, const SumOverRanks& sum_over_ranks,
                           cudaStream_t stream) {
  SAE_ASSERT(kth >= 1, "kth must be >= 1");
  // Digits of the 31 bits below the sign: 30..21, 20..10, 9..0.
  struct Pass {
    int shift_lo, bins;
  };
  const Pass passes[3] = {{21, 1024}, {10, 2048}, {0, 1024}};
  const int64_t n = N * F;
  auto* hist = scratch<unsigned long long>(2048, stream);
  std::vector<int64_t> h(2048);
  uint32_t prefix = 0;  // the digits fixed so far
  int64_t remaining = kth;
  int shift_hi = 31;
  for (const Pass& p : passes) {
    SAE_CUDA_CHECK(cudaMemsetAsync(hist, 0, sizeof(unsigned long long) * size_t(p.bins), stream));
    if (n > 0) {
      positive_histogram_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(pre, n, shift_hi, prefix, p.shift_lo,
                                                                               p.bins, hist);
      SAE_CUDA_LAUNCH_CHECK();
    }
    SAE_CUDA_CHECK(cudaMemcpyAsync(h.data(), hist, sizeof(int64_t) * size_t(p.bins), cudaMemcpyDeviceToHost, stream));
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (sum_over_ranks) sum_over_ranks(h.data(), p.bins);  // every rank, every pass
    int64_t higher = 0;  // values in the bins above
    int digit = -1;
    for (int b = p.bins - 1; b >= 0; --b) {
      if (higher + h[size_t(b)] >= remaining) {
        digit = b;
        break;
      }
      higher += h[size_t(b)];
    }
    if (digit < 0) {  // fewer than kth positive values in all (first pass only)
      SAE_CUDA_CHECK(cudaFreeAsync(hist, stream));
      return 0.0f;
    }
    remaining -= higher;
    prefix = (prefix << (shift_hi - p.shift_lo)) | uint32_t(digit);
    shift_hi = p.shift_lo;
  }
  SAE_CUDA_CHECK(cudaFreeAsync(hist, stream));
  float t;
  std::memcpy(&t, &prefix, sizeof t);
  return t;
}

void relu_l1_backward(const float* W_dec, const int32_t* idx, const float* val, int64_t N, int64_t W, int64_t D,
                      int64_t F, double coef, int64_t global_batch, float* dval, double* grad_W_dec, double* norm,
                      double* zsum, double* penalty, cudaStream_t stream) {
  if (coef == 0.0 || F == 0) return;
  SAE_ASSERT(F < int64_t(INT32_MAX), "too many latents for one launch");
  const double c = coef / double(global_batch);
  row_norms_kernel<<<unsigned(F), kThreads, 0, stream>>>(W_dec, D, norm);
  SAE_CUDA_LAUNCH_CHECK();
  SAE_CUDA_CHECK(cudaMemsetAsync(zsum, 0, sizeof(double) * size_t(F), stream));
  const int64_t NW = N * W;
  if (NW > 0) {
    per_latent_sums(idx, val, N, W, F, zsum, stream);
    relu_dval_kernel<<<grid_for(NW, kThreads), kThreads, 0, stream>>>(idx, NW, norm, c, dval);
    SAE_CUDA_LAUNCH_CHECK();
  }
  relu_decoder_kernel<<<unsigned(F), kThreads, 0, stream>>>(W_dec, D, norm, zsum, c, grad_W_dec);
  SAE_CUDA_LAUNCH_CHECK();
  relu_penalty_kernel<<<1, kThreads, 0, stream>>>(zsum, norm, F, coef, penalty);
  SAE_CUDA_LAUNCH_CHECK();
}

void jumprelu_threshold_backward(const float* pre, const float* g, const float* W_dec, const float* log_threshold,
                                 int64_t N, int64_t D, int64_t F, double l0_coef, double bandwidth,
                                 int64_t global_batch, double* grad_log_threshold, cudaStream_t stream) {
  if (N == 0 || F == 0) return;
  jumprelu_kernel<<<grid_for(F, 128), 128, 0, stream>>>(pre, g, W_dec, log_threshold, N, D, F, 1.0 / bandwidth,
                                                        l0_coef / double(global_batch), grad_log_threshold);
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
