// Small launch and reduction helpers shared by the kernels in kernels/cuda/*.cu.
#pragma once
#include <cstdint>

namespace saepipe::cuda {

// Blocks for a grid-stride loop over n elements (at least 1; capped, the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : blocks > 65535LL * 16 ? 65535LL * 16 : blocks);
}

// Threads for one block that walks a row of D columns: a multiple of 32, at most 256.
inline int block_for_columns(int64_t D) {
  const int64_t t = ((D + 31) / 32) * 32;
  return int(t < 256 ? (t > 0 ? t : 32) : 256);
}

// Sum over the 32 lanes of a warp by a fixed butterfly; every lane gets the result.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block of kThreads threads in a fixed order (the warps' butterflies, then the warps
// in order); every thread gets the result. smem holds kThreads / 32 doubles; every thread of
// the block must call it.
template <int kThreads>
__device__ __forceinline__ double block_sum(double v, double* smem) {
  static_assert(kThreads % 32 == 0, "whole warps");
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  double t = 0.0;
  for (int w = 0; w < kThreads / 32; ++w) t += smem[w];  // same order in every thread
  __syncthreads();  // smem may be reused by the next call
  return t;
}

}  // namespace saepipe::cuda
