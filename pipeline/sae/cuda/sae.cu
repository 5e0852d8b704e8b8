// The TopK SAE training step on one GPU (pipeline/sae/cuda/sae.hpp).
//
// Shape legend: N tokens, D d_in, F d_sae, K k, A auxk (effective: min(auxk, #dead)),
// B global batch, C tokens per encoder round.
//   x, xc, recon, g, aux_recon, aux_g [N,D]; pre [C,F]; idx, val, dval [N,K];
//   aux_idx, aux_val, aux_dval [N,A]; row_sq [N]; s_f [F]; bdec_acc [D].
//
// The order of the work follows sae_forward_backward (pipeline/sae/sae.cpp) for topk; every
// sum over tokens runs in a fixed order (see kernels_cuda.hpp), so a step is deterministic on
// a given GPU. The AuxK top-k runs on each round's pre-activations right after the main one,
// so [N,F] never has to be kept.
#include "pipeline/sae/cuda/sae.hpp"

#include "kernels/cuda/device_util.cuh"

#include <algorithm>
#include <string>

namespace saepipe::cuda {
namespace {

constexpr int kThreads = 256;

// Sum of v over the block in a fixed order (device_util.cuh).
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double smem[kThreads / 32];
  return cuda::block_sum<kThreads>(v, smem);
}

// g[n,:] = float((2/B) (x_hat - x)), row_sq[n] = ||x_hat_n - x_n||^2 (double), one row per block.
__global__ void __launch_bounds__(kThreads) residual_kernel(const float* __restrict__ recon, const float* __restrict__ x,
                                                            int64_t D, double two_over_B, float* __restrict__ g,
                                                            double* __restrict__ row_sq) {
  const int64_t n = blockIdx.x;
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kThreads) {
    const double e = double(recon[n * D + d]) - double(x[n * D + d]);
    ss += e * e;
    g[n * D + d] = float(two_over_B * e);
  }
  const double t = block_sum(ss);
  if (threadIdx.x == 0) row_sq[n] = t;
}

// AuxK: r = x - x_hat (fixed), e = e_hat - r; ga = float(coef * e), row_sq[n] = ||e_n||^2.
__global__ void __launch_bounds__(kThreads) aux_residual_kernel(const float* __restrict__ aux_recon,
                                                                const float* __restrict__ recon,
                                                                const float* __restrict__ x, int64_t D, double coef,
                                                                float* __restrict__ ga, double* __restrict__ row_sq) {
  const int64_t n = blockIdx.x;
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += kThreads) {
    const double r = double(x[n * D + d]) - double(recon[n * D + d]);
    const double e = double(aux_recon[n * D + d]) - r;
    ss += e * e;
    ga[n * D + d] = float(coef * e);
  }
  const double t = block_sum(ss);
  if (threadIdx.x == 0) row_sq[n] = t;
}

// out[0] += sum of x[0, n), one block, fixed order.
__global__ void __launch_bounds__(kThreads) sum_kernel(const double* __restrict__ x, int64_t n, double* __restrict__ out) {
  __shared__ double smem[kThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += x[i];
  smem[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] += smem[0];
}

// Active slots: fire_count[f] += 1 per active slot (nullable) and the total into *active
// (stored as a double holding an integer: exact below 2^53).
__global__ void count_active_kernel(const int32_t* __restrict__ idx, int64_t NK, unsigned long long* __restrict__ fire,
                                    unsigned long long* __restrict__ total) {
  unsigned long long local = 0;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < NK; s += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[s];
    if (f < 0) continue;
    ++local;
    if (fire) atomicAdd(&fire[f], 1ull);
  }
  // Integer sums: the order does not matter.
  local = warp_sum(local);
  if ((threadIdx.x & 31) == 0 && local) atomicAdd(total, local);
}

__global__ void add_count_kernel(const unsigned long long* __restrict__ count, double* __restrict__ out) {
  out[0] += double(*count);
}


template <class T>
T* scratch(int64_t n, cudaStream_t stream) {
  void* p = nullptr;
  SAE_CUDA_CHECK(cudaMallocAsync(&p, sizeof(T) * size_t(n > 0 ? n : 1), stream));
  return static_cast<T*>(p);
}

}  // namespace

TopKSaeStep::TopKSaeStep(int64_t d_in, int64_t d_sae, const TopKStepConfig& cfg) : cfg_(cfg) {
  SAE_ASSERT(d_in > 0 && d_sae > 0, "SAE dimensions must be positive");
  SAE_ASSERT(cfg.k >= 1 && cfg.k <= d_sae, "k must be in [1, d_sae]");
  SAE_ASSERT(cfg.k <= kMaxTopK, "k too large for the GPU top-k");
  SAE_ASSERT(cfg.chunk_tokens >= 0, "negative chunk_tokens");
  layout_.D = d_in;
  layout_.F = d_sae;
  s_f_.resize(d_sae);
  bdec_acc_.resize(d_in);
  SAE_ASSERT(cfg.auxk >= 0 && cfg.auxk <= kMaxTopK, "auxk must be in [0, " + std::to_string(kMaxTopK) + "]");
  sums_.resize(3);
  SAE_CUDA_CHECK(cudaMemset(sums_.data(), 0, sizeof(double) * 3));
  if (cfg_.precision == GemmPrecision::BF16) W_encT_bf16_.resize(d_in * d_sae);
}

void TopKSaeStep::reserve(int64_t N) {
  if (N <= capacity_) return;
  const int64_t D = layout_.D, F = layout_.F, K = cfg_.k;
  const int64_t C = cfg_.chunk_tokens > 0 ? std::min(cfg_.chunk_tokens, N) : N;
  xc_.resize(N * D);
  if (cfg_.precision == GemmPrecision::BF16) xc_bf16_.resize(N * D);
  pre_.resize(C * F);
  idx_.resize(N * K);
  val_.resize(N * K);
  dval_.resize(N * K);
  recon_.resize(N * D);
  g_.resize(N * D);
  row_sq_.resize(N);
  if (cfg_.auxk > 0) {
    const int64_t A = cfg_.auxk;
    aux_idx_.resize(N * A);
    aux_val_.resize(N * A);
    aux_dval_.resize(N * A);
    aux_recon_.resize(N * D);
    aux_g_.resize(N * D);
  }
  capacity_ = N;
}

template <class G>
void TopKSaeStep::run(const float* params, const float* x, int64_t N, int64_t global_batch, const uint8_t* dead,
                      int64_t n_dead, G* grad, int64_t* fire_count, Blas& blas, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && global_batch >= N && global_batch > 0, "global batch must cover the local tokens");
  SAE_ASSERT(n_dead >= 0 && n_dead <= layout_.F, "dead latent count out of range");
  if (N == 0) return;
  reserve(N);
  const SaeLayout& L = layout_;
  const int64_t D = L.D, F = L.F, K = cfg_.k;
  const float* W_encT = params + L.W_encT();
  const float* b_enc = params + L.b_enc();
  const float* W_dec = params + L.W_dec();
  const float* b_dec = params + L.b_dec();
  const bool bf16 = cfg_.precision == GemmPrecision::BF16;
  // AuxK width: as the CPU, min(auxk, #dead), 0 without a dead mask.
  const int64_t A = (cfg_.auxk > 0 && dead) ? std::min(cfg_.auxk, n_dead) : 0;

  // ---- encoder: pre = xc W_encT^T in rounds of C tokens, each followed by its top-k (+ b_enc)
  center_rows(x, b_dec, N, D, xc_.data(), bf16 ? xc_bf16_.data() : nullptr, stream);
  if (bf16) to_bf16(W_encT, F * D, W_encT_bf16_.data(), stream);
  const int64_t C = cfg_.chunk_tokens > 0 ? std::min(cfg_.chunk_tokens, N) : N;
  for (int64_t r = 0; r < N; r += C) {
    const int64_t m = std::min(C, N - r);
    if (bf16)
      matmul(false, true, m, F, D, 1.0f, xc_bf16_.data() + r * D, D, W_encT_bf16_.data(), D, 0.0f, pre_.data(), F,
             blas, stream);
    else
      matmul(false, true, m, F, D, 1.0f, xc_.data() + r * D, D, W_encT, D, 0.0f, pre_.data(), F, cfg_.precision,
             blas, stream);
    topk_rows(pre_.data(), m, F, K, nullptr, idx_.data() + r * K, val_.data() + r * K, stream, b_enc);
    if (A > 0)
      topk_rows(pre_.data(), m, F, A, dead, aux_idx_.data() + r * A, aux_val_.data() + r * A, stream, b_enc);
  }
  relu_slots(idx_.data(), val_.data(), N * K, stream);
  if (A > 0) relu_slots(aux_idx_.data(), aux_val_.data(), N * A, stream);
  sparse_decode(idx_.data(), val_.data(), N, K, W_dec, b_dec, D, recon_.data(), stream);

  // ---- g = dLoss/dx_hat = (2/B)(x_hat - x); the squared error and active counts
  residual_kernel<<<unsigned(N), kThreads, 0, stream>>>(recon_.data(), x, D, 2.0 / double(global_batch), g_.data(),
                                                         row_sq_.data());
  SAE_CUDA_LAUNCH_CHECK();
  sum_kernel<<<1, kThreads, 0, stream>>>(row_sq_.data(), N, sums_.data());
  SAE_CUDA_LAUNCH_CHECK();
  auto* active = scratch<unsigned long long>(1, stream);
  SAE_CUDA_CHECK(cudaMemsetAsync(active, 0, sizeof(unsigned long long), stream));
  count_active_kernel<<<grid_for(N * K, 256), 256, 0, stream>>>(
      idx_.data(), N * K, reinterpret_cast<unsigned long long*>(fire_count), active);
  SAE_CUDA_LAUNCH_CHECK();
  add_count_kernel<<<1, 1, 0, stream>>>(active, sums_.data() + 1);
  SAE_CUDA_LAUNCH_CHECK();
  SAE_CUDA_CHECK(cudaFreeAsync(active, stream));

  // ---- decoder: b_dec through x_hat, W_dec, dval = dLoss/dz (0 on empty slots)
  bdec_acc_.zero(stream);
  weighted_column_sums(nullptr, g_.data(), N, D, 1.0, bdec_acc_.data(), stream);
  sparse_decode_backward(idx_.data(), val_.data(), g_.data(), N, K, W_dec, D, F, dval_.data(), grad + L.W_dec(),
                         stream);

  // ---- AuxK: dead latents reconstruct the residual r = x - x_hat (a constant)
  if (A > 0) {
    sparse_decode(aux_idx_.data(), aux_val_.data(), N, A, W_dec, nullptr, D, aux_recon_.data(), stream);
    aux_residual_kernel<<<unsigned(N), kThreads, 0, stream>>>(aux_recon_.data(), recon_.data(), x, D,
                                                              cfg_.auxk_coef * 2.0 / double(global_batch),
                                                              aux_g_.data(), row_sq_.data());
    SAE_CUDA_LAUNCH_CHECK();
    sum_kernel<<<1, kThreads, 0, stream>>>(row_sq_.data(), N, sums_.data() + 2);
    SAE_CUDA_LAUNCH_CHECK();
    sparse_decode_backward(aux_idx_.data(), aux_val_.data(), aux_g_.data(), N, A, W_dec, D, F, aux_dval_.data(),
                           grad + L.W_dec(), stream);
  }

  // ---- encoder: W_encT and b_enc from dpre = dval on the active slots; b_dec through xc:
  //      -sum_f s_f W_encT[f] with s_f the total dpre of latent f
  s_f_.zero(stream);
  sparse_encode_backward(idx_.data(), dval_.data(), xc_.data(), N, K, D, F, grad + L.W_encT(), s_f_.data(), stream);
  if (A > 0)
    sparse_encode_backward(aux_idx_.data(), aux_dval_.data(), xc_.data(), N, A, D, F, grad + L.W_encT(), s_f_.data(),
                           stream);
  add_into(s_f_.data(), F, grad + L.b_enc(), stream);
  weighted_column_sums(s_f_.data(), W_encT, F, D, -1.0, bdec_acc_.data(), stream);
  add_into(bdec_acc_.data(), D, grad + L.b_dec(), stream);
}

void TopKSaeStep::forward_backward(const float* params, const float* x, int64_t N, int64_t global_batch,
                                   const uint8_t* dead, int64_t n_dead, float* grad, int64_t* fire_count, Blas& blas,
                                   cudaStream_t stream) {
  run<float>(params, x, N, global_batch, dead, n_dead, grad, fire_count, blas, stream);
}

void TopKSaeStep::forward_backward(const float* params, const float* x, int64_t N, int64_t global_batch,
                                   const uint8_t* dead, int64_t n_dead, double* grad, int64_t* fire_count, Blas& blas,
                                   cudaStream_t stream) {
  run<double>(params, x, N, global_batch, dead, n_dead, grad, fire_count, blas, stream);
}

TopKSaeStep::Sums TopKSaeStep::take_sums(cudaStream_t stream) {
  double host[3] = {0, 0, 0};
  SAE_CUDA_CHECK(cudaMemcpyAsync(host, sums_.data(), sizeof host, cudaMemcpyDeviceToHost, stream));
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  SAE_CUDA_CHECK(cudaMemsetAsync(sums_.data(), 0, sizeof host, stream));
  return {host[0], int64_t(host[1]), host[2]};
}

void TopKSaeStep::apply_adam(float* params, float* grad, float* m, float* v, int64_t t, float lr, float beta1,
                             float beta2, float eps, bool unit_norm_decoder, cudaStream_t stream) {
  const SaeLayout& L = layout_;
  if (!unit_norm_decoder) {
    adam_step(params, grad, m, v, L.size(), lr, beta1, beta2, eps, t, stream);
    return;
  }
  // [W_encT | b_enc], then the decoder rows (fused), then [b_dec | log_threshold].
  const int64_t head = L.W_dec(), tail0 = L.b_dec();
  adam_step(params, grad, m, v, head, lr, beta1, beta2, eps, t, stream);
  adam_step_unit_rows(params + L.W_dec(), grad + L.W_dec(), m + L.W_dec(), v + L.W_dec(), L.F, L.D, lr, beta1, beta2,
                      eps, t, stream);
  adam_step(params + tail0, grad + tail0, m + tail0, v + tail0, L.size() - tail0, lr, beta1, beta2, eps, t, stream);
}

}  // namespace saepipe::cuda
