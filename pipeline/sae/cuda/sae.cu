// The SAE forward and backward on one GPU (pipeline/sae/cuda/sae.hpp).
//
// Shape legend: N this call's rows, D d_in, F d_sae, K k, W selection width, A auxk (effective:
// min(auxk, #dead)), B global batch, G encoder rows per GEMM, E = lead + N + tail.
//   x, xc [E,D]; recon, g, aux_recon, aux_g [N,D]; block [G,F]; pre [N,F] (threshold
//   selections only); idx, val, dval [N,W]; aux_idx, aux_val, aux_dval [N,A]; row_sq,
//   aux_row_sq, count [N]; s_f, norm, zsum [F]; bdec_acc [D].
//
// The order of the work follows sae_forward_backward (pipeline/sae/sae.cpp); every sum over
// rows runs in a fixed order (see kernels_cuda.hpp). topk selects block by block from each
// GEMM's output (AuxK's top-k right after), so [N,F] is never kept; the threshold selections
// (batchtopk, relu, jumprelu) keep pre [N,F], which the width count, batchtopk's global
// threshold and jumprelu's threshold gradient read.
#include "pipeline/sae/cuda/sae.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cuda/device_util.cuh"

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
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += x[i];
  const double t = block_sum(acc);
  if (threadIdx.x == 0) out[0] += t;
}

// Active slots: fire[f] += 1 per active slot (nullable) and their number into *total.
__global__ void count_active_kernel(const int32_t* __restrict__ idx, int64_t NW, unsigned long long* __restrict__ fire,
                                    unsigned long long* __restrict__ total) {
  unsigned long long local = 0;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < NW; s += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[s];
    if (f < 0) continue;
    ++local;
    if (fire) atomicAdd(&fire[f], 1ull);
  }
  // Integer sums: the order does not matter.
  local = warp_sum(local);
  if ((threadIdx.x & 31) == 0 && local) atomicAdd(total, local);
}

// sums[active] += count (exact below 2^53); sums[penalty] += l0_coef * count (jumprelu's L0).
__global__ void add_count_kernel(const unsigned long long* __restrict__ count, double l0_coef,
                                 double* __restrict__ sums) {
  sums[kSumActive] += double(*count);
  if (l0_coef != 0.0) sums[kSumPenalty] += l0_coef * double(*count);
}

// out[r, f] = in[r, f] + b[f] (one float add, as the CPU's GEMM onto b_enc); in may be out.
__global__ void add_bias_rows_kernel(const float* in, int64_t R, int64_t F, const float* __restrict__ b, float* out) {
  const int64_t total = R * F;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __fadd_rn(in[i], b[i % F]);
}

// Sharded candidates: local latents to global ones (empty slots stay -1).
__global__ void offset_latents_kernel(int32_t* __restrict__ idx, int64_t n, int32_t first) {
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += int64_t(gridDim.x) * blockDim.x)
    if (idx[s] >= 0) idx[s] += first;
}

// out[n,d] = float(acc[n,d] + b[d]) (b nullable): the float64 reconstruction rounded once.
__global__ void round_rows_kernel(const double* __restrict__ acc, int64_t total, int64_t D,
                                  const float* __restrict__ b, float* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float(acc[i] + (b ? double(b[i % D]) : 0.0));
}

template <class T>
void grow(DeviceBuffer<T>& b, int64_t n) {
  if (b.size() < n) b.resize(n);
}

}  // namespace

DeviceSae::DeviceSae(int64_t d_in, int64_t d_sae, const SaeConfig& cfg, GemmPrecision precision,
                     const DeviceLatentShard* shard)
    : cfg_(cfg), precision_(precision), topk_(cfg.architecture == Architecture::TopK), shard_(shard) {
  SAE_ASSERT(d_in > 0 && d_sae > 0, "SAE dimensions must be positive");
  SAE_ASSERT(!shard || (shard->first >= 0 && shard->first + d_sae <= shard->total), "latent shard out of range");
  if (cfg.architecture == Architecture::TopK || cfg.architecture == Architecture::BatchTopK)
    SAE_ASSERT(cfg.k >= 1 && cfg.k <= (shard ? shard->total : d_sae), "k must be in [1, d_sae]");
  if (topk_) SAE_ASSERT(cfg.k <= kMaxTopK, "k too large for the GPU top-k (at most " + std::to_string(kMaxTopK) + ")");
  SAE_ASSERT(cfg.auxk >= 0 && cfg.auxk <= kMaxTopK, "auxk must be in [0, " + std::to_string(kMaxTopK) + "]");
  SAE_ASSERT(cfg.encoder_block >= 0, "negative encoder_block");
  layout_.D = d_in;
  layout_.F = d_sae;
  s_f_.resize(d_sae);
  bdec_acc_.resize(d_in);
  active_.resize(1);
  if (cfg.architecture == Architecture::ReLU) {
    norm_.resize(d_sae);
    zsum_.resize(d_sae);
  }
  if (precision_ == GemmPrecision::BF16) W_encT_bf16_.resize(d_in * d_sae);
}

void DeviceSae::reserve(int64_t E, int64_t N, int64_t W, int64_t A) {
  const int64_t D = layout_.D, F = layout_.F;
  const int64_t G = cfg_.encoder_block > 0 ? cfg_.encoder_block : std::min<int64_t>(kMaxEncoderRows, E);
  grow(xc_, E * D);
  if (precision_ == GemmPrecision::BF16) grow(xc_bf16_, E * D);
  grow(block_, std::min(G, E) * F);
  if (!topk_) {
    grow(pre_, N * F);
    grow(count_, N);
  }
  grow(idx_, N * W);
  grow(val_, N * W);
  grow(dval_, N * W);
  grow(recon_, N * D);
  grow(g_, N * D);
  grow(row_sq_, N);
  if (A > 0) {
    grow(aux_idx_, N * A);
    grow(aux_val_, N * A);
    grow(aux_dval_, N * A);
    grow(aux_recon_, N * D);
    grow(aux_g_, N * D);
    grow(aux_row_sq_, N);
  }
}

void DeviceSae::encode(const float* params, const float* x, int64_t lead, int64_t N, int64_t tail,
                       int64_t global_batch, const uint8_t* dead, int64_t n_dead, const SumOverRanks& sum_over_ranks,
                       Blas& blas, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && lead >= 0 && tail >= 0, "negative row count");
  SAE_ASSERT(n_dead >= 0 && n_dead <= (shard_ ? shard_->total : layout_.F), "dead latent count out of range");
  const SaeLayout& L = layout_;
  const int64_t D = L.D, F = L.F, K = cfg_.k, E = lead + N + tail;
  // Sharded: `dead` spans every shard's latents; this shard offers its best min(K, F) and
  // min(A, F) per row, which the group merges.
  const bool sharded = shard_ != nullptr;
  const uint8_t* dead_here = dead && sharded ? dead + shard_->first : dead;
  const float* W_encT = params + L.W_encT();
  const float* b_enc = params + L.b_enc();
  const bool bf16 = precision_ == GemmPrecision::BF16;
  // AuxK width: as the CPU, min(auxk, #dead), 0 without a dead mask.
  const int64_t A = (cfg_.auxk > 0 && dead) ? std::min(cfg_.auxk, n_dead) : 0;
  reserve(E, N, topk_ ? K : 1, A);
  aux_width_ = A;
  const int64_t Wc = sharded ? std::min(K, F) : K, Ac = sharded ? std::min(A, F) : A;
  if (sharded && topk_) grow(cand_idx_, N * Wc), grow(cand_val_, N * Wc);
  if (sharded && A > 0) grow(aux_cand_idx_, N * Ac), grow(aux_cand_val_, N * Ac);

  // ---- pre = xc W_encT^T + b_enc on blocks of G rows of x; each block's rows of this call
  //      selected at once (topk) or kept in pre (threshold selections)
  if (E > 0) {
    center_rows(x, params + L.b_dec(), E, D, xc_.data(), bf16 ? xc_bf16_.data() : nullptr, stream);
    if (bf16) to_bf16(W_encT, F * D, W_encT_bf16_.data(), stream);
  }
  const int64_t G = cfg_.encoder_block > 0 ? cfg_.encoder_block : std::min<int64_t>(kMaxEncoderRows, std::max<int64_t>(E, 1));
  for (int64_t r = 0; r < E; r += G) {
    const int64_t m = std::min(G, E - r);
    const int64_t o0 = std::max(r, lead), o1 = std::min(r + m, lead + N);  // this call's rows of the block
    if (o1 <= o0) continue;
    const bool direct = !topk_ && o0 == r && o1 == r + m;  // the whole block is this call's
    float* out = direct ? pre_.data() + (r - lead) * F : block_.data();
    if (bf16)
      matmul(false, true, m, F, D, 1.0f, xc_bf16_.data() + r * D, D, W_encT_bf16_.data(), D, 0.0f, out, F, blas, stream);
    else
      matmul(false, true, m, F, D, 1.0f, xc_.data() + r * D, D, W_encT, D, 0.0f, out, F, precision_, blas, stream);
    const float* mine = out + (o0 - r) * F;
    const int64_t rows = o1 - o0, first = o0 - lead;
    if (topk_ && sharded) {
      topk_rows(mine, rows, F, Wc, nullptr, cand_idx_.data() + first * Wc, cand_val_.data() + first * Wc, stream, b_enc);
      if (A > 0)
        topk_rows(mine, rows, F, Ac, dead_here, aux_cand_idx_.data() + first * Ac, aux_cand_val_.data() + first * Ac,
                  stream, b_enc);
    } else if (topk_) {
      topk_rows(mine, rows, F, K, nullptr, idx_.data() + first * K, val_.data() + first * K, stream, b_enc);
      if (A > 0)
        topk_rows(mine, rows, F, A, dead, aux_idx_.data() + first * A, aux_val_.data() + first * A, stream, b_enc);
    } else {
      add_bias_rows_kernel<<<grid_for(rows * F, kThreads), kThreads, 0, stream>>>(mine, rows, F, b_enc,
                                                                                  pre_.data() + first * F);
      SAE_CUDA_LAUNCH_CHECK();
    }
  }

  // ---- the selection
  if (topk_) {
    width_ = K;
    if (sharded) {  // collectives over the shard group: also with no rows
      merge_candidates(cand_idx_.data(), cand_val_.data(), N, Wc, K, idx_.data(), val_.data(), stream);
      if (A > 0) merge_candidates(aux_cand_idx_.data(), aux_cand_val_.data(), N, Ac, A, aux_idx_.data(),
                                  aux_val_.data(), stream);
    }
    relu_slots(idx_.data(), val_.data(), N * K, stream);
  } else {
    const float* log_thr = nullptr;
    float thr_all = 0.0f;
    if (cfg_.architecture == Architecture::BatchTopK) {
      // A collective over the data group: called with N = 0 too.
      batch_threshold_ = kth_largest_positive(pre_.data(), N, F, global_batch * K, sum_over_ranks, stream);
      thr_all = std::nextafter(batch_threshold_, -1.0f);  // pre >= t is pre > (the float just below t)
    } else if (cfg_.architecture == Architecture::JumpReLU) {
      log_thr = params + L.log_threshold();
    }
    width_ = count_above(pre_.data(), N, F, log_thr, thr_all, count_.data(), stream);
    grow(idx_, N * width_);
    grow(val_, N * width_);
    grow(dval_, N * width_);
    fill_above(pre_.data(), N, F, log_thr, thr_all, width_, idx_.data(), val_.data(), stream);
    if (A > 0 && sharded) {
      topk_rows(pre_.data(), N, F, Ac, dead_here, aux_cand_idx_.data(), aux_cand_val_.data(), stream, nullptr);
      merge_candidates(aux_cand_idx_.data(), aux_cand_val_.data(), N, Ac, A, aux_idx_.data(), aux_val_.data(), stream);
    } else if (A > 0) {
      topk_rows(pre_.data(), N, F, A, dead, aux_idx_.data(), aux_val_.data(), stream, nullptr);
    }
  }
  if (A > 0) relu_slots(aux_idx_.data(), aux_val_.data(), N * A, stream);
  decode(params, idx_.data(), val_.data(), N, width_, params + L.b_dec(), recon_.data(), stream);
}

void DeviceSae::merge_candidates(int32_t* cand_idx, const float* cand_val, int64_t N, int64_t W, int64_t K,
                                 int32_t* idx, float* val, cudaStream_t stream) {
  if (N * W > 0) {
    offset_latents_kernel<<<grid_for(N * W, kThreads), kThreads, 0, stream>>>(cand_idx, N * W, int32_t(shard_->first));
    SAE_CUDA_LAUNCH_CHECK();
  }
  shard_->merge_top(cand_idx, cand_val, N, W, K, idx, val, stream);
}

void DeviceSae::decode(const float* params, const int32_t* idx, const float* val, int64_t N, int64_t W,
                       const float* b, float* out, cudaStream_t stream) {
  const int64_t D = layout_.D;
  const float* W_dec = params + layout_.W_dec();
  if (!shard_) {
    sparse_decode(idx, val, N, W, W_dec, b, D, out, stream);
    return;
  }
  // Each shard's part in float64, summed over the group, rounded once (as the CPU's decode_rows).
  grow(recon64_, N * D);
  sparse_decode_f64(idx, val, N, W, W_dec, D, recon64_.data(), stream);
  shard_->sum_rows(recon64_.data(), N, D, stream);  // a collective: also with no rows
  if (N * D > 0) {
    round_rows_kernel<<<grid_for(N * D, kThreads), kThreads, 0, stream>>>(recon64_.data(), N * D, D, b, out);
    SAE_CUDA_LAUNCH_CHECK();
  }
}

void DeviceSae::encode_decode(const float* params, const float* x, int64_t N, Blas& blas, cudaStream_t stream) {
  encode(params, x, 0, N, 0, std::max<int64_t>(N, 1), nullptr, 0, SumOverRanks{}, blas, stream);
}

void DeviceSae::forward_backward(const float* params, const float* x, int64_t lead, int64_t N, int64_t tail,
                                 int64_t global_batch, const uint8_t* dead, int64_t n_dead, double* grad,
                                 unsigned long long* fire, double* sums, const SumOverRanks& sum_over_ranks,
                                 Blas& blas, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && global_batch >= N && global_batch > 0, "global batch must cover the local tokens");
  encode(params, x, lead, N, tail, global_batch, dead, n_dead, sum_over_ranks, blas, stream);
  if (N == 0) return;
  const SaeLayout& L = layout_;
  const int64_t D = L.D, F = L.F, W = width_, A = aux_width_;
  const float* x_own = x + lead * D;
  const float* xc_own = xc_.data() + lead * D;
  const float* W_encT = params + L.W_encT();
  const float* W_dec = params + L.W_dec();
  const double two_over_B = 2.0 / double(global_batch);
  SAE_ASSERT(N <= int64_t(INT32_MAX), "too many rows for one launch");
  // Sharded, the reconstruction (and so g) is the group's: one shard adds what depends on it only.
  const bool lead_shard = !shard_ || shard_->lead;

  // ---- g = dLoss/dx_hat = (2/B)(x_hat - x); the squared error, active counts, L0 penalty
  residual_kernel<<<unsigned(N), kThreads, 0, stream>>>(recon_.data(), x_own, D, two_over_B, g_.data(), row_sq_.data());
  SAE_CUDA_LAUNCH_CHECK();
  if (lead_shard) {
    sum_kernel<<<1, kThreads, 0, stream>>>(row_sq_.data(), N, sums + kSumSqErr);
    SAE_CUDA_LAUNCH_CHECK();
  }
  active_.zero(stream);
  count_active_kernel<<<grid_for(N * W, 256), 256, 0, stream>>>(idx_.data(), N * W, fire, active_.data());
  SAE_CUDA_LAUNCH_CHECK();
  const double l0 = cfg_.architecture == Architecture::JumpReLU ? cfg_.l0_coef : 0.0;
  add_count_kernel<<<1, 1, 0, stream>>>(active_.data(), l0, sums);
  SAE_CUDA_LAUNCH_CHECK();

  // ---- decoder: b_dec through x_hat, W_dec, dval = dLoss/dz (0 on empty slots)
  bdec_acc_.zero(stream);
  if (lead_shard) weighted_column_sums(nullptr, g_.data(), N, D, 1.0, bdec_acc_.data(), stream);
  sparse_decode_backward(idx_.data(), val_.data(), g_.data(), N, W, W_dec, D, F, dval_.data(), grad + L.W_dec(), stream);
  if (cfg_.architecture == Architecture::ReLU)
    relu_l1_backward(W_dec, idx_.data(), val_.data(), N, W, D, F, cfg_.l1_coef, global_batch, dval_.data(),
                     grad + L.W_dec(), norm_.data(), zsum_.data(), sums + kSumPenalty, stream);
  if (cfg_.architecture == Architecture::JumpReLU)
    jumprelu_threshold_backward(pre_.data(), g_.data(), W_dec, params + L.log_threshold(), N, D, F, cfg_.l0_coef,
                                cfg_.bandwidth, global_batch, grad + L.log_threshold(), stream);

  // ---- AuxK: dead latents reconstruct the residual r = x - x_hat (a constant)
  if (A > 0) {
    decode(params, aux_idx_.data(), aux_val_.data(), N, A, nullptr, aux_recon_.data(), stream);  // sharded: a collective
    aux_residual_kernel<<<unsigned(N), kThreads, 0, stream>>>(aux_recon_.data(), recon_.data(), x_own, D,
                                                              cfg_.auxk_coef * two_over_B, aux_g_.data(),
                                                              aux_row_sq_.data());
    SAE_CUDA_LAUNCH_CHECK();
    if (lead_shard) {
      sum_kernel<<<1, kThreads, 0, stream>>>(aux_row_sq_.data(), N, sums + kSumAuxSqErr);
      SAE_CUDA_LAUNCH_CHECK();
    }
    sparse_decode_backward(aux_idx_.data(), aux_val_.data(), aux_g_.data(), N, A, W_dec, D, F, aux_dval_.data(),
                           grad + L.W_dec(), stream);
  }

  // ---- encoder: W_encT and b_enc from dpre = dval on the active slots; b_dec through xc:
  //      -sum_f s_f W_encT[f] with s_f the total dpre of latent f
  s_f_.zero(stream);
  sparse_encode_backward(idx_.data(), dval_.data(), xc_own, N, W, D, F, grad + L.W_encT(), s_f_.data(), stream);
  if (A > 0)
    sparse_encode_backward(aux_idx_.data(), aux_dval_.data(), xc_own, N, A, D, F, grad + L.W_encT(), s_f_.data(),
                           stream);
  add_into(s_f_.data(), F, grad + L.b_enc(), stream);
  weighted_column_sums(s_f_.data(), W_encT, F, D, -1.0, bdec_acc_.data(), stream);
  add_into(bdec_acc_.data(), D, grad + L.b_dec(), stream);
}

void sae_apply_adam(const SaeLayout& L, float* params, float* grad, float* m, float* v, int64_t t, float lr,
                    float lr_threshold, float beta1, float beta2, float eps, bool unit_norm_decoder,
                    cudaStream_t stream) {
  auto segment = [&](int64_t a, int64_t b, float rate) {
    if (b > a) adam_step(params + a, grad + a, m + a, v + a, b - a, rate, beta1, beta2, eps, t, stream);
  };
  // [W_encT | b_enc], the decoder rows (fused with the projection when unit_norm_decoder),
  // b_dec, then log_threshold at its own rate (the last segment of the layout).
  if (unit_norm_decoder) {
    segment(0, L.W_dec(), lr);
    adam_step_unit_rows(params + L.W_dec(), grad + L.W_dec(), m + L.W_dec(), v + L.W_dec(), L.F, L.D, lr, beta1,
                        beta2, eps, t, stream);
    segment(L.b_dec(), L.log_threshold(), lr);
  } else {
    segment(0, L.log_threshold(), lr);
  }
  segment(L.log_threshold(), L.size(), lr_threshold);
}

}  // namespace saepipe::cuda
