// Sparse decoder forward (the CPU reference is kernels/cpu/sparse_decode.cpp).
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   idx [N,K] (int32, -1 = empty slot); val [N,K]; W_dec [F,D]; b_dec [D]; out [N,D].
//
// One block per token; each thread owns columns and adds the K rows in slot order with the
// CPU's operations (a separately rounded multiply, then an add): the result equals
// cpu::sparse_decode to the last bit.
#include <climits>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {
namespace {

constexpr int kSlotTile = 256;

// acc + v * w with the product rounded on its own: float as the CPU's float sum; double for
// the float64 sum, where the product of two floats is exact.
__device__ __forceinline__ float add_product(float acc, float v, float w) { return __fadd_rn(acc, __fmul_rn(v, w)); }
__device__ __forceinline__ double add_product(double acc, float v, float w) {
  return __dadd_rn(acc, __dmul_rn(double(v), double(w)));
}

// Acc float (sparse_decode, b nullable) or double (sparse_decode_f64, b null).
template <class Acc>
__global__ void sparse_decode_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t K,
                                     const float* __restrict__ W, const float* __restrict__ b, int64_t D,
                                     Acc* __restrict__ out) {
  __shared__ int32_t s_idx[kSlotTile];
  __shared__ float s_val[kSlotTile];
  const int64_t n = blockIdx.x;
  const int32_t* ir = idx + n * K;
  const float* vr = val + n * K;
  Acc* o = out + n * D;
  // Columns in rounds of blockDim; slots in tiles staged in shared memory.
  for (int64_t d0 = 0; d0 < D; d0 += blockDim.x) {
    const int64_t d = d0 + threadIdx.x;
    Acc acc = 0;
    if (d < D && b) acc = b[d];
    for (int64_t j0 = 0; j0 < K; j0 += kSlotTile) {
      const int64_t tile = K - j0 < kSlotTile ? K - j0 : kSlotTile;
      __syncthreads();
      for (int64_t t = threadIdx.x; t < tile; t += blockDim.x) {
        s_idx[t] = ir[j0 + t];
        s_val[t] = vr[j0 + t];
      }
      __syncthreads();
      if (d < D) {
#pragma unroll 4
        for (int64_t t = 0; t < tile; ++t) {
          const int32_t f = s_idx[t];
          if (f < 0) continue;  // empty slot
          acc = add_product(acc, s_val[t], W[int64_t(f) * D + d]);
        }
      }
    }
    if (d < D) o[d] = acc;
  }
}

}  // namespace

void sparse_decode_f64(const int32_t* idx, const float* val, int64_t N, int64_t K, const float* W_dec, int64_t D,
                       double* out, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0, "negative size");
  SAE_ASSERT(N <= int64_t(INT32_MAX), "too many rows for one launch");
  if (N == 0 || D == 0) return;
  sparse_decode_kernel<double><<<unsigned(N), block_for_columns(D), 0, stream>>>(idx, val, K, W_dec, nullptr, D, out);
  SAE_CUDA_LAUNCH_CHECK();
}

void sparse_decode(const int32_t* idx, const float* val, int64_t N, int64_t K,
                   const float* W_dec, const float* b_dec, int64_t D, float* out,
                   cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0, "negative size");
  SAE_ASSERT(N <= int64_t(INT32_MAX), "too many rows for one launch");
  if (N == 0 || D == 0) return;
  sparse_decode_kernel<float><<<unsigned(N), block_for_columns(D), 0, stream>>>(idx, val, K, W_dec, b_dec, D, out);
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
