// The GPT-2 forward pass's own kernels (see gpt2_kernels.hpp). Every launch is checked.
//
// Shape legend: B sequences, T positions, N = B*T rows, C d_model, H heads, hs head size,
// O output features.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/gpt2_kernels.hpp"

namespace saepipe::cuda {

namespace {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// ---------------------------------------------------------------- embeddings

__global__ void embed_kernel(const int32_t* __restrict__ tokens, int64_t N, int64_t T, int64_t C,
                             const float* __restrict__ wte, const float* __restrict__ wpe, float* __restrict__ x,
                             float* __restrict__ tok_out, float* __restrict__ pos_out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < N * C; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / C, c = i % C;
    const float tv = wte[int64_t(tokens[n]) * C + c];
    const float pv = wpe[(n % T) * C + c];
    if (tok_out) tok_out[i] = tv;
    if (pos_out) pos_out[i] = pv;
    x[i] = __fadd_rn(tv, pv);
  }
}

// ---------------------------------------------------------------- residual + LayerNorm

constexpr int kLnWarps = 4;  // rows per block, one warp per row

template <class O>
__global__ void __launch_bounds__(kLnWarps * 32)
    residual_layernorm_kernel(float* __restrict__ x, const float* __restrict__ delta, int64_t N, int64_t C,
                              const float* __restrict__ w, const float* __restrict__ b, double eps,
                              O* __restrict__ out) {
  const int64_t row = int64_t(blockIdx.x) * kLnWarps + threadIdx.x / 32;
  const int lane = int(threadIdx.x % 32);
  if (row >= N) return;  // whole warps leave together
  float* xr = x + row * C;
  double sum = 0;
  for (int64_t c = lane; c < C; c += 32) {
    float v = xr[c];
    if (delta) {
      v = __fadd_rn(v, delta[row * C + c]);
      xr[c] = v;
    }
    sum += double(v);
  }
  sum = warp_sum(sum);
  const float mean = float(sum / double(C));
  double sq = 0;
  for (int64_t c = lane; c < C; c += 32) {
    const double d = double(__fsub_rn(xr[c], mean));
    sq = __dadd_rn(sq, __dmul_rn(d, d));
  }
  sq = warp_sum(sq);
  const float rstd = float(1.0 / sqrt(sq / double(C) + eps));
  O* o = out + row * C;
  for (int64_t c = lane; c < C; c += 32) {
    float v = __fmul_rn(__fsub_rn(xr[c], mean), rstd);
    if (w) v = __fadd_rn(__fmul_rn(v, w[c]), b[c]);
    o[c] = from_f<O>(v);
  }
}

// ---------------------------------------------------------------- causal attention

// One block: 16 query rows of one (sequence, head), 4 warps of 4 rows each. Keys and values
// stream through shared memory in tiles of 32 (one key per lane for the scores); each warp
// keeps, per row, the running maximum m, the running sum l and the unnormalised output o
// (lane holds dims lane, lane+32, ...), rescaled when the maximum grows (online softmax).
constexpr int kKeyTile = 32;
constexpr int kAttnWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kAttnWarps * kRowsPerWarp;
constexpr int kDimsPerLane = int(kMaxHeadSize / 32);

size_t attention_smem_bytes(int64_t hs) {
  return sizeof(float) * size_t(2 * kKeyTile * (hs + 1) + kRowsPerBlock * hs);
}

template <class Tv>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_kernel(const Tv* __restrict__ qkv, Tv* __restrict__ out, int64_t T, int64_t C, int64_t hs, float scale) {
  extern __shared__ float smem[];
  const int64_t ld = hs + 1;  // padded: lane j reading Ks[j][d] hits bank (j*(hs+1) + d) % 32
  float* Ks = smem;                  // [kKeyTile][ld]
  float* Vs = Ks + kKeyTile * ld;    // [kKeyTile][ld]
  float* Qs = Vs + kKeyTile * ld;    // [kRowsPerBlock][hs]
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = int64_t(blockIdx.x) * kRowsPerBlock;
  const int warp = int(threadIdx.x / 32), lane = int(threadIdx.x % 32);
  const int64_t stride = 3 * C;  // elements per row of qkv
  const Tv* base = qkv + b * T * stride + h * hs;

  for (int64_t i = threadIdx.x; i < kRowsPerBlock * hs; i += blockDim.x) {
    const int64_t r = i / hs, d = i % hs, t = q0 + r;
    Qs[i] = t < T ? to_f(base[t * stride + d]) : 0.0f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][kDimsPerLane];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) o[r][i] = 0.0f;
  }

  const int64_t q_last = min(q0 + kRowsPerBlock, T) - 1;  // the block's last query
  for (int64_t k0 = 0; k0 <= q_last; k0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and Qs written, the first time)
    for (int64_t i = threadIdx.x; i < kKeyTile * hs; i += blockDim.x) {
      const int64_t j = i / hs, d = i % hs, t = k0 + j;
      float kv = 0.0f, vv = 0.0f;
      if (t < T) {
        kv = to_f(base[t * stride + C + d]);
        vv = to_f(base[t * stride + 2 * C + d]);
      }
      Ks[j * ld + d] = kv;
      Vs[j * ld + d] = vv;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t row = warp * kRowsPerWarp + r, t = q0 + row;
      if (t >= T || k0 > t) continue;  // uniform across the warp
      const int64_t key = k0 + lane;
      const bool visible = key <= t;
      float s = -INFINITY;
      if (visible) {
        const float* q = Qs + row * hs;
        const float* kr = Ks + lane * ld;
        float dot = 0.0f;
        for (int64_t d = 0; d < hs; ++d) dot += q[d] * kr[d];
        s = dot * scale;
      }
      const float m_new = fmaxf(m[r], warp_max(s));  // finite: key k0 <= t is visible
      const float p = visible ? expf(s - m_new) : 0.0f;
      const float corr = expf(m[r] - m_new);         // 0 on the first tile (m = -inf)
      l[r] = l[r] * corr + warp_sum(p);
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) o[r][i] *= corr;
      for (int j = 0; j < kKeyTile; ++j) {
        const float pj = __shfl_sync(kFull, p, j);
        const float* vr = Vs + j * ld;
#pragma unroll
        for (int i = 0; i < kDimsPerLane; ++i) {
          const int64_t d = lane + 32 * i;
          if (d < hs) o[r][i] += pj * vr[d];
        }
      }
      m[r] = m_new;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = q0 + warp * kRowsPerWarp + r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    Tv* orow = out + (b * T + t) * C + h * hs;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < hs) orow[d] = from_f<Tv>(o[r][i] * inv);
    }
  }
}

// ---------------------------------------------------------------- bias + GELU

template <class Tv>
__global__ void bias_gelu_kernel(Tv* __restrict__ y, const Tv* __restrict__ bias, int64_t N, int64_t O, bool gelu,
                                 bool gelu_tanh) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < N * O; i += int64_t(gridDim.x) * blockDim.x) {
    float v = to_f(y[i]);
    if (bias) v += to_f(bias[i % O]);
    if (gelu) {
      if (gelu_tanh) {
        constexpr float k = 0.7978845608028654f;  // sqrt(2/pi)
        v = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
      } else {
        v = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
      }
    }
    y[i] = from_f<Tv>(v);
  }
}

__global__ void add_f32_kernel(float* __restrict__ y, const float* __restrict__ d, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __fadd_rn(y[i], d[i]);
}

}  // namespace

size_t act_bytes(ActType t) { return t == ActType::F32 ? 4 : 2; }

const char* to_string(ActType t) {
  switch (t) {
    case ActType::F32: return "fp32";
    case ActType::BF16: return "bf16";
    case ActType::F16: return "fp16";
  }
  return "?";
}

void gpt2_embed(const int32_t* tokens, int64_t B, int64_t T, int64_t C, const float* wte, const float* wpe, float* x,
                float* tok_out, float* pos_out, cudaStream_t stream) {
  const int64_t N = B * T;
  if (N == 0) return;
  embed_kernel<<<grid_for(N * C, 256), 256, 0, stream>>>(tokens, N, T, C, wte, wpe, x, tok_out, pos_out);
  SAE_CUDA_LAUNCH_CHECK();
}

void residual_layernorm(float* x, const float* delta, int64_t N, int64_t C, const float* w, const float* b,
                        double eps, void* out, ActType out_type, cudaStream_t stream) {
  if (N == 0) return;
  const unsigned blocks = unsigned((N + kLnWarps - 1) / kLnWarps);
  switch (out_type) {
    case ActType::F32:
      residual_layernorm_kernel<<<blocks, kLnWarps * 32, 0, stream>>>(x, delta, N, C, w, b, eps,
                                                                      static_cast<float*>(out));
      break;
    case ActType::BF16:
      residual_layernorm_kernel<<<blocks, kLnWarps * 32, 0, stream>>>(x, delta, N, C, w, b, eps,
                                                                      static_cast<__nv_bfloat16*>(out));
      break;
    case ActType::F16:
      residual_layernorm_kernel<<<blocks, kLnWarps * 32, 0, stream>>>(x, delta, N, C, w, b, eps,
                                                                      static_cast<__half*>(out));
      break;
  }
  SAE_CUDA_LAUNCH_CHECK();
}

void causal_attention(const void* qkv, void* out, ActType type, int64_t B, int64_t T, int64_t C, int64_t H,
                      float scale, cudaStream_t stream) {
  if (B == 0 || T == 0) return;
  const int64_t hs = C / H;
  SAE_ASSERT(hs * H == C && hs >= 1 && hs <= kMaxHeadSize,
             "causal_attention: head size " + std::to_string(hs) + " is not in [1, " +
                 std::to_string(kMaxHeadSize) + "]");
  SAE_ASSERT(B <= 65535 && H <= 65535, "causal_attention: too many sequences or heads for one grid");
  const dim3 grid(unsigned((T + kRowsPerBlock - 1) / kRowsPerBlock), unsigned(H), unsigned(B));
  const size_t smem = attention_smem_bytes(hs);  // <= 41 KiB for hs = 128: no opt-in needed
  switch (type) {
    case ActType::F32:
      attention_kernel<<<grid, kAttnWarps * 32, smem, stream>>>(static_cast<const float*>(qkv),
                                                                static_cast<float*>(out), T, C, hs, scale);
      break;
    case ActType::BF16:
      attention_kernel<<<grid, kAttnWarps * 32, smem, stream>>>(static_cast<const __nv_bfloat16*>(qkv),
                                                                static_cast<__nv_bfloat16*>(out), T, C, hs, scale);
      break;
    case ActType::F16:
      attention_kernel<<<grid, kAttnWarps * 32, smem, stream>>>(static_cast<const __half*>(qkv),
                                                                static_cast<__half*>(out), T, C, hs, scale);
      break;
  }
  SAE_CUDA_LAUNCH_CHECK();
}

void bias_gelu(void* y, const void* bias, ActType type, int64_t N, int64_t O, bool gelu, bool gelu_tanh,
               cudaStream_t stream) {
  if (N * O == 0) return;
  const unsigned grid = grid_for(N * O, 256);
  switch (type) {
    case ActType::F32:
      bias_gelu_kernel<<<grid, 256, 0, stream>>>(static_cast<float*>(y), static_cast<const float*>(bias), N, O, gelu,
                                                 gelu_tanh);
      break;
    case ActType::BF16:
      bias_gelu_kernel<<<grid, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(y),
                                                 static_cast<const __nv_bfloat16*>(bias), N, O, gelu, gelu_tanh);
      break;
    case ActType::F16:
      bias_gelu_kernel<<<grid, 256, 0, stream>>>(static_cast<__half*>(y), static_cast<const __half*>(bias), N, O,
                                                 gelu, gelu_tanh);
      break;
  }
  SAE_CUDA_LAUNCH_CHECK();
}

void add_f32(float* y, const float* d, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_f32_kernel<<<grid_for(n, 256), 256, 0, stream>>>(y, d, n);
  SAE_CUDA_LAUNCH_CHECK();
}

void convert_from_f32(const float* in, int64_t n, ActType type, void* out_host) {
  switch (type) {
    case ActType::F32:
      std::copy_n(in, n, static_cast<float*>(out_host));
      break;
    case ActType::BF16: {
      auto* o = static_cast<__nv_bfloat16*>(out_host);
      for (int64_t i = 0; i < n; ++i) o[i] = __float2bfloat16_rn(in[i]);
      break;
    }
    case ActType::F16: {
      auto* o = static_cast<__half*>(out_host);
      for (int64_t i = 0; i < n; ++i) o[i] = __float2half_rn(in[i]);
      break;
    }
  }
}

}  // namespace saepipe::cuda
