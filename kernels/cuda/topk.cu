// Per-row top-k on the GPU, with the encoder bias fused in.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   x [N,F] (+ col_bias [F]) -> idx [N,K] (int32), val [N,K], each row by descending value.
//
// Algorithm: one thread block per row, a radix select over 64-bit keys followed by a sort of
// a small candidate set in shared memory.
//   key(c) = order-preserving bits of v = x[n,c] + bias[c] (high 32 bits; -0 taken as +0)
//            | ~c (low 32 bits)
// so "larger key" is exactly "larger value, then lower column" (the CPU's order), and all
// keys of a row are distinct. Excluded columns (NaN, allowed[c] = 0) have no key; every valid
// key is > 0.
//   1. Histogram pass: 11-bit digits from the top (levels of bits 63..53, 52..42, ... , 8..0).
//      At each level, count the keys that match the digits fixed so far into 2048 shared-memory
//      bins (integer atomics), scan the bins from the top and fix the digit b whose bin holds
//      the K-th largest key. The keys >= (fixed digits, zeros below) are then exactly those in
//      bins above b at some level plus those in bin b: when they are at most kCap (4096),
//      stop. The first level (sign, exponent and 2 mantissa bits of the value) almost always
//      suffices for real pre-activations (a bin is a quarter octave); ties and clustered values
//      take more levels, at most 6 (then the bin holds one key, so at most K remain).
//   2. Collect pass: every key >= that bound goes into a shared-memory buffer (at most 4096).
//   3. Bitonic sort of the buffer (descending; padded with key 0 to a power of two), the first
//      K keys are the answer. Fewer valid keys than K leave slots idx -1 / val 0.
// Each pass reads the row from global memory (usually two passes; L2 holds the row between
// them); float4 loads where F % 4 == 0. The result is deterministic: the set of keys and
// their order do not depend on the atomics' order.
#include <cstdint>
#include <string>

#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kDigitBits = 11;
constexpr int kMaxBins = 1 << kDigitBits;  // 2048
constexpr int kCap = int(kMaxTopK);        // candidate buffer, 64-bit keys: 32 KiB
constexpr int kLevels = (64 + kDigitBits - 1) / kDigitBits;  // 6
static_assert(kMaxBins % kThreads == 0, "bins split evenly over the threads");

__device__ __forceinline__ uint32_t ordered_bits(float v) {
  const uint32_t u = (v == 0.0f) ? 0u : __float_as_uint(v);  // -0 -> +0: equal values, equal keys
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float value_of(uint64_t key) {
  const uint32_t o = uint32_t(key >> 32);
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}
__device__ __forceinline__ int32_t column_of(uint64_t key) { return int32_t(~uint32_t(key)); }

// Calls fn(key) for every valid column of the row, threads striding over it.
template <bool kVec, class Fn>
__device__ __forceinline__ void for_each_key(const float* __restrict__ row, const float* __restrict__ bias,
                                             const uint8_t* __restrict__ allowed, int64_t F, Fn fn) {
  auto one = [&](float v, int64_t c, bool ok) {
    if (ok && v == v) fn((uint64_t(ordered_bits(v)) << 32) | uint64_t(~uint32_t(c)));
  };
  if constexpr (kVec) {
    const int64_t F4 = F / 4;
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const float4* bias4 = reinterpret_cast<const float4*>(bias);
    const uchar4* allowed4 = reinterpret_cast<const uchar4*>(allowed);
    for (int64_t i = threadIdx.x; i < F4; i += kThreads) {
      float4 v = row4[i];
      if (bias) {
        const float4 b = bias4[i];
        v.x += b.x, v.y += b.y, v.z += b.z, v.w += b.w;
      }
      uchar4 a = make_uchar4(1, 1, 1, 1);
      if (allowed) a = allowed4[i];
      one(v.x, 4 * i + 0, a.x != 0);
      one(v.y, 4 * i + 1, a.y != 0);
      one(v.z, 4 * i + 2, a.z != 0);
      one(v.w, 4 * i + 3, a.w != 0);
    }
  } else {
    for (int64_t c = threadIdx.x; c < F; c += kThreads) {
      float v = row[c];
      if (bias) v += bias[c];
      one(v, c, !allowed || allowed[c] != 0);
    }
  }
}

// Exclusive prefix sum over the block in thread order, and the block total.
__device__ __forceinline__ int block_exclusive_sum(int v, int* warp_tot, int& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  if (lane == 31) warp_tot[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    int w = lane < kThreads / 32 ? warp_tot[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    if (lane < kThreads / 32) warp_tot[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  const int excl = inc - v + (warp > 0 ? warp_tot[warp - 1] : 0);
  total = warp_tot[kThreads / 32 - 1];
  __syncthreads();  // warp_tot is reused by the next call
  return excl;
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) topk_rows_kernel(const float* __restrict__ x, const float* __restrict__ bias,
                                                            const uint8_t* __restrict__ allowed, int64_t F, int K,
                                                            int32_t* __restrict__ idx, float* __restrict__ val) {
  __shared__ int hist[kMaxBins];
  __shared__ uint64_t cand[kCap];
  __shared__ int warp_tot[kThreads / 32];
  __shared__ int s_bin, s_above, s_count;

  const int64_t n = blockIdx.x;
  const float* row = x + n * F;
  uint64_t prefix = 0, mask = 0, lower = 1;  // lower: keys >= lower are collected
  int need = K;                              // keys still to find among those matching prefix
  for (int level = 0; level < kLevels; ++level) {
    const int hi = 64 - kDigitBits * level;
    const int shift = hi > kDigitBits ? hi - kDigitBits : 0;
    const int bins = 1 << (hi - shift);
    for (int b = threadIdx.x; b < bins; b += kThreads) hist[b] = 0;
    __syncthreads();
    const uint64_t pfx = prefix, msk = mask;
    for_each_key<kVec>(row, bias, allowed, F, [&](uint64_t key) {
      if ((key & msk) == pfx) atomicAdd(&hist[int(key >> shift) & (bins - 1)], 1);
    });
    __syncthreads();
    // Thread t owns a run of bins, thread 0 the highest: the exclusive sum over threads is the
    // count of keys in the bins above each run.
    const int per = (bins + kThreads - 1) / kThreads;
    const int top = bins - per * int(threadIdx.x);  // bins [top - per, top)
    int local = 0;
    for (int b = top - 1; b >= top - per && b >= 0; --b) local += hist[b];
    int total = 0;
    int above = block_exclusive_sum(local, warp_tot, total);
    if (level == 0 && total <= need) break;  // at most K valid keys: take them all (lower = 1)
    for (int b = top - 1; b >= top - per && b >= 0; --b) {
      if (above < need && above + hist[b] >= need) {
        s_bin = b;
        s_above = above;
      }
      above += hist[b];
    }
    __syncthreads();
    const int b = s_bin, bin_above = s_above;
    const int in_bin = hist[b];
    __syncthreads();  // hist and s_bin are rewritten by the next level
    prefix |= uint64_t(b) << shift;
    mask |= uint64_t(bins - 1) << shift;
    need -= bin_above;
    // Keys >= prefix: the K - need found above it, plus the bin itself.
    if ((K - need) + in_bin <= kCap) {
      lower = prefix;
      break;
    }
  }

  // Collect every key >= lower.
  if (threadIdx.x == 0) s_count = 0;
  __syncthreads();
  for_each_key<kVec>(row, bias, allowed, F, [&](uint64_t key) {
    if (key >= lower) {
      const int pos = atomicAdd(&s_count, 1);
      if (pos < kCap) cand[pos] = key;  // cannot overflow (counted above); guard anyway
    }
  });
  __syncthreads();
  const int m = s_count < kCap ? s_count : kCap;
  int P = 1;
  while (P < m || P < K) P <<= 1;  // K <= kCap, so P <= kCap
  for (int i = m + threadIdx.x; i < P; i += kThreads) cand[i] = 0;
  __syncthreads();
  // Bitonic sort, descending.
  for (int k = 2; k <= P; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < P; i += kThreads) {
        const int l = i ^ j;
        if (l > i) {
          const uint64_t a = cand[i], c = cand[l];
          const bool descending = (i & k) == 0;
          if (descending ? (a < c) : (a > c)) {
            cand[i] = c;
            cand[l] = a;
          }
        }
      }
      __syncthreads();
    }
  }
  for (int j = threadIdx.x; j < K; j += kThreads) {
    const uint64_t key = cand[j];  // j < K <= P
    const bool have = key != 0;
    idx[n * K + j] = have ? column_of(key) : -1;
    val[n * K + j] = have ? value_of(key) : 0.0f;
  }
}

__global__ void relu_slots_kernel(int32_t* __restrict__ idx, float* __restrict__ val, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (!(val[i] > 0.0f)) {
      idx[i] = -1;
      val[i] = 0.0f;
    }
}

bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

}  // namespace

void topk_rows(const float* x, int64_t N, int64_t F, int64_t K, const uint8_t* allowed,
               int32_t* idx, float* val, cudaStream_t stream, const float* col_bias) {
  SAE_ASSERT(N >= 0 && K >= 0, "negative size");
  SAE_ASSERT(K <= F, "top-k larger than the number of columns");
  SAE_ASSERT(F <= int64_t(INT32_MAX), "column index does not fit int32");
  SAE_ASSERT(K <= kMaxTopK, "top-k on the GPU supports k <= " + std::to_string(kMaxTopK) + ", got " +
                                std::to_string(K));
  SAE_ASSERT(N <= int64_t(INT32_MAX), "too many rows for one launch");
  if (K == 0 || N == 0) return;
  const bool vec = F % 4 == 0 && aligned(x, 16) && (!col_bias || aligned(col_bias, 16)) &&
                   (!allowed || aligned(allowed, 4));
  if (vec)
    topk_rows_kernel<true><<<unsigned(N), kThreads, 0, stream>>>(x, col_bias, allowed, F, int(K), idx, val);
  else
    topk_rows_kernel<false><<<unsigned(N), kThreads, 0, stream>>>(x, col_bias, allowed, F, int(K), idx, val);
  SAE_CUDA_LAUNCH_CHECK();
}

void relu_slots(int32_t* idx, float* val, int64_t n, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative size");
  if (n == 0) return;
  const int64_t blocks = (n + 255) / 256;
  relu_slots_kernel<<<unsigned(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(idx, val, n);
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
