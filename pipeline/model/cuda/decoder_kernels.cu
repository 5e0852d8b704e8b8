// The generic decoder's kernels (decoder_kernels.hpp). Every launch is checked.
//
// Shape legend: see decoder_kernels.hpp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device_util.cuh"
#include "pipeline/model/cuda/decoder_kernels.hpp"

namespace saepipe::cuda {

namespace {

template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

constexpr unsigned kFull = 0xffffffffu;
constexpr int kNormWarps = 4;  // rows per block of the norm kernel (one warp per row)

// Calls f with the pointer of `out` cast to the storage type of t.
template <class F>
void by_type(ActType t, void* out, F&& f) {
  switch (t) {
    case ActType::F32: f(static_cast<float*>(out)); break;
    case ActType::BF16: f(static_cast<__nv_bfloat16*>(out)); break;
    case ActType::F16: f(static_cast<__half*>(out)); break;
  }
}

__global__ void embed_kernel(const int32_t* __restrict__ tokens, int64_t N, int64_t C, const float* __restrict__ table,
                             float scale, float* __restrict__ x) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < N * C; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / C, c = i % C;
    const float v = table[int64_t(tokens[n]) * C + c];
    x[i] = scale == 1.0f ? v : __fmul_rn(v, scale);
  }
}

// One warp per row; statistics in fp64 as decoder_ops::norm_rows (the mean rounded to fp32).
template <class To>
__global__ void __launch_bounds__(kNormWarps * 32)
    norm_kernel(float* __restrict__ x, const float* __restrict__ delta, int64_t N, int64_t C, bool rms, double eps,
                const float* __restrict__ w, const float* __restrict__ b, To* out) {
  const int64_t n = int64_t(blockIdx.x) * kNormWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (n >= N) return;
  float* xr = x + n * C;
  if (delta)
    for (int64_t c = lane; c < C; c += 32) xr[c] = __fadd_rn(xr[c], delta[n * C + c]);
  __syncwarp();
  float mean = 0;
  if (!rms) {
    double s = 0;
    for (int64_t c = lane; c < C; c += 32) s += xr[c];
    mean = float(warp_sum(s) / double(C));
  }
  double sq = 0;
  for (int64_t c = lane; c < C; c += 32) {
    const double d = double(__fsub_rn(xr[c], mean));
    sq += d * d;
  }
  const float rstd = float(1.0 / sqrt(warp_sum(sq) / double(C) + eps));
  __syncwarp();
  for (int64_t c = lane; c < C; c += 32) {
    const float v = __fmul_rn(__fsub_rn(xr[c], mean), rstd);
    const float y = w ? (b ? __fadd_rn(__fmul_rn(v, w[c]), b[c]) : __fmul_rn(v, w[c])) : v;
    out[n * C + c] = from_f<To>(y);
  }
}

__global__ void bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t N, int64_t O) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < N * O; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __fadd_rn(y[i], bias[i % O]);
}

// One warp per (row, head).
__global__ void head_norm_kernel(float* __restrict__ x, int64_t N, int64_t stride, int64_t H, int64_t hd, double eps,
                                 const float* __restrict__ w) {
  const int64_t item = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (item >= N * H) return;
  float* v = x + (item / H) * stride + (item % H) * hd;
  double sq = 0;
  for (int64_t i = lane; i < hd; i += 32) sq += double(v[i]) * double(v[i]);
  const float rstd = float(1.0 / sqrt(warp_sum(sq) / double(hd) + eps));
  __syncwarp();
  for (int64_t i = lane; i < hd; i += 32) v[i] = __fmul_rn(__fmul_rn(v[i], rstd), w[i]);
}

__global__ void rope_kernel(float* __restrict__ x, int64_t N, int64_t T, int64_t stride, int64_t H, int64_t hd,
                            int64_t half, const float* __restrict__ cos, const float* __restrict__ sin) {
  const int64_t total = N * H * half;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = k % half, h = (k / half) % H, n = k / (half * H);
    float* v = x + n * stride + h * hd;
    const float c = cos[(n % T) * half + i], s = sin[(n % T) * half + i];
    const float a = v[i], b = v[i + half];
    v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
}

// One warp per (sequence, query head, position): each lane holds hd / 32 dims (hd <= 256);
// online softmax over the keys in the window, in fp32.
template <class To>
__global__ void attention_kernel(const float* __restrict__ qkv, int64_t B, int64_t T, int64_t Hq, int64_t Hkv,
                                 int64_t hd, int64_t window, float scale, float cap, To* __restrict__ out) {
  constexpr int kPer = int(kMaxDecoderHeadDim / 32);
  const int64_t item = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (item >= B * Hq * T) return;
  const int64_t t = item % T, h = (item / T) % Hq, b = item / (T * Hq);
  const int64_t stride = (Hq + 2 * Hkv) * hd, kv = h / (Hq / Hkv);
  const float* base = qkv + b * T * stride;
  float q[kPer], acc[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = lane + 32 * j;
    q[j] = i < hd ? base[t * stride + h * hd + i] : 0.0f;
    acc[j] = 0.0f;
  }
  float mx = -INFINITY, sum = 0.0f;
  const int64_t u0 = window > 0 ? max(int64_t(0), t - window + 1) : 0;
  for (int64_t u = u0; u <= t; ++u) {
    const float* k = base + u * stride + (Hq + kv) * hd;
    float d = 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < hd) d = fmaf(q[j], k[i], d);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(kFull, d, o);
    float s = d * scale;
    if (cap > 0.0f) s = cap * tanhf(s / cap);
    const float m2 = fmaxf(mx, s);
    const float corr = expf(mx - m2), p = expf(s - m2);
    sum = sum * corr + p;
    const float* v = base + u * stride + (Hq + Hkv + kv) * hd;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < hd) acc[j] = acc[j] * corr + p * v[i];
    }
    mx = m2;
  }
  To* o = out + (b * T + t) * Hq * hd + h * hd;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < hd) o[i] = from_f<To>(acc[j] / sum);
  }
}

__device__ __forceinline__ float activate(float x, Activation act) {
  switch (act) {
    case Activation::Silu: return x / (1.0f + expf(-x));
    case Activation::GeluTanh: {
      constexpr float k = 0.7978845608028654f;
      return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    default: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
  }
}

template <class To>
__global__ void activation_kernel(const float* __restrict__ in, int64_t N, int64_t I, bool gated, Activation act,
                                  To* __restrict__ h) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < N * I; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = k / I, i = k % I;
    const float y = gated ? activate(in[n * 2 * I + i], act) * in[n * 2 * I + I + i] : activate(in[k], act);
    h[k] = from_f<To>(y);
  }
}

}  // namespace

void decoder_embed(const int32_t* tokens, int64_t N, int64_t C, const float* table, float scale, float* x,
                   cudaStream_t stream) {
  if (N == 0) return;
  embed_kernel<<<grid_for(N * C, 256), 256, 0, stream>>>(tokens, N, C, table, scale, x);
  SAE_CUDA_LAUNCH_CHECK();
}

void decoder_norm(float* x, const float* delta, int64_t N, int64_t C, NormType type, double eps, const float* w,
                  const float* b, void* out, ActType out_type, cudaStream_t stream) {
  if (N == 0) return;
  const unsigned blocks = unsigned((N + kNormWarps - 1) / kNormWarps);
  by_type(out_type, out, [&](auto* o) {
    norm_kernel<<<blocks, kNormWarps * 32, 0, stream>>>(x, delta, N, C, type == NormType::RmsNorm, eps, w, b, o);
  });
  SAE_CUDA_LAUNCH_CHECK();
}

void decoder_add_bias(float* y, const float* bias, int64_t N, int64_t O, cudaStream_t stream) {
  if (N == 0 || !bias) return;
  bias_kernel<<<grid_for(N * O, 256), 256, 0, stream>>>(y, bias, N, O);
  SAE_CUDA_LAUNCH_CHECK();
}

void decoder_head_rms_norm(float* x, int64_t N, int64_t stride, int64_t n_heads, int64_t hd, double eps,
                           const float* w, cudaStream_t stream) {
  const int64_t warps = N * n_heads;
  if (warps == 0) return;
  head_norm_kernel<<<unsigned((warps + 7) / 8), 256, 0, stream>>>(x, N, stride, n_heads, hd, eps, w);
  SAE_CUDA_LAUNCH_CHECK();
}

void decoder_rope(float* x, int64_t N, int64_t T, int64_t stride, int64_t n_heads, int64_t hd, int64_t rd,
                  const float* cos, const float* sin, cudaStream_t stream) {
  const int64_t total = N * n_heads * (rd / 2);
  if (total == 0) return;
  rope_kernel<<<grid_for(total, 256), 256, 0, stream>>>(x, N, T, stride, n_heads, hd, rd / 2, cos, sin);
  SAE_CUDA_LAUNCH_CHECK();
}

void decoder_attention(const float* qkv, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t hd, int64_t window,
                       float scale, float softcap, void* out, ActType out_type, cudaStream_t stream) {
  SAE_ASSERT(hd <= kMaxDecoderHeadDim, "head_dim beyond the CUDA attention kernel's 256");
  const int64_t warps = B * Hq * T;
  if (warps == 0) return;
  by_type(out_type, out, [&](auto* o) {
    attention_kernel<<<unsigned((warps + 7) / 8), 256, 0, stream>>>(qkv, B, T, Hq, Hkv, hd, window, scale, softcap, o);
  });
  SAE_CUDA_LAUNCH_CHECK();
}

void decoder_activation(const float* in, int64_t N, int64_t I, bool gated, Activation act, void* h, ActType out_type,
                        cudaStream_t stream) {
  if (N * I == 0) return;
  by_type(out_type, h, [&](auto* o) {
    activation_kernel<<<grid_for(N * I, 256), 256, 0, stream>>>(in, N, I, gated, act, o);
  });
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
