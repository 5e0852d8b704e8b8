// The sparse gradients of the decoder and encoder weights (the CPU reference is
// kernels/cpu/sparse_backward.cpp).
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   idx [N,K] (int32, -1 = empty slot); val, dval, dpre [N,K]; g, xc [N,D];
//   W_dec [F,D]; grad_W_dec, grad_W_encT [F,D]; grad_b_enc [F].
//
// Gradients (only the active latents of each token): a sort-by-latent scheme, no atomics on
// floats, so the result is the same on every run:
//   1. keys = idx (empty slot -> F), values = slot s = n*K + j; a stable radix sort by key
//      (CUB) gives, per latent, its slots in increasing s (increasing token n).
//   2. start[f] = first sorted position of latent f (binary search), f in [0, F].
//   3. Each latent's slots are cut into chunks of kChunk (256); one block per chunk sums
//      coef[s] * rows[s / K, :] in double, in increasing s. A latent with one chunk (almost
//      all of them) adds its sum into the gradient row directly; a latent with more (a dense
//      latent) writes per-chunk partials, which a second kernel adds in chunk order. The
//      chunking depends only on the counts, so the order of every sum is fixed.
// The per-latent sum runs in double like the CPU's; the CPU adds each term into the
// gradient row in turn, this adds the chunk sums: the results agree to double rounding.
// dval[n,j] = <W_dec[idx[n,j]], g[n]>: one warp per slot, float partial sums, a fixed
// shuffle tree.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <climits>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {
namespace {

constexpr int kChunk = 256;

// ---------------------------------------------------------------- dval

// One warp per slot: dval[s] = <W[idx[s]], g[s / K]> (0 for empty slots).
__global__ void slot_dot_kernel(const int32_t* __restrict__ idx, const float* __restrict__ g, int64_t NK, int64_t K,
                                const float* __restrict__ W, int64_t D, float* __restrict__ dval) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t s = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5); s < NK; s += warps) {
    const int32_t f = idx[s];
    float acc = 0.0f;
    if (f >= 0) {
      const float* w = W + int64_t(f) * D;
      const float* gn = g + (s / K) * D;
      for (int64_t d = lane; d < D; d += 32) acc = fmaf(w[d], gn[d], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) dval[s] = f >= 0 ? acc : 0.0f;
  }
}

// ---------------------------------------------------------------- bucketing by latent

__global__ void make_sort_input_kernel(const int32_t* __restrict__ idx, int64_t NK, int32_t F,
                                       int32_t* __restrict__ keys, int32_t* __restrict__ slots) {
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < NK; s += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[s];
    // Empty slots (and, defensively, out-of-range indices) sort last and are never summed.
    keys[s] = (f >= 0 && f < F) ? f : F;
    slots[s] = int32_t(s);
  }
}

// start[f] = first position of key >= f in sorted keys, f in [0, F]; chunks[f] = its number of
// chunks (chunks[F] = 0), multi[f] = chunks if > 1 else 0 (multi[F] = 0).
__global__ void latent_ranges_kernel(const int32_t* __restrict__ keys, int32_t NK, int32_t F,
                                     int32_t* __restrict__ start, int32_t* __restrict__ chunks,
                                     int32_t* __restrict__ multi) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f <= F; f += int64_t(gridDim.x) * blockDim.x) {
    auto lower_bound = [&](int32_t v) {
      int32_t lo = 0, hi = NK;
      while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < v) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const int32_t b = lower_bound(int32_t(f));
    start[f] = b;
    if (f < F) {
      const int32_t e = lower_bound(int32_t(f) + 1);
      const int32_t c = (e - b + kChunk - 1) / kChunk;
      chunks[f] = c;
      multi[f] = c > 1 ? c : 0;
    } else {
      chunks[f] = 0;
      multi[f] = 0;
    }
  }
}

// One block per chunk. Column D stands for the coefficient sum (grad_sum), when wanted.
template <class G, class S>
__global__ void accumulate_chunks_kernel(const int32_t* __restrict__ start, const int32_t* __restrict__ chunk_start,
                                         const int32_t* __restrict__ multi_start, const int32_t* __restrict__ slots,
                                         int32_t F, const float* __restrict__ coef, const float* __restrict__ rows,
                                         int64_t K, int64_t D, G* __restrict__ grad, S* __restrict__ grad_sum,
                                         double* __restrict__ partial) {
  const int32_t c = blockIdx.x;
  if (c >= chunk_start[F]) return;
  // The latent whose chunks hold c: the last f with chunk_start[f] <= c.
  int32_t lo = 0, hi = F;  // answer in [0, F)
  while (hi - lo > 1) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (chunk_start[mid] <= c) lo = mid;
    else hi = mid;
  }
  const int32_t f = lo;
  const int32_t local = c - chunk_start[f];
  const int32_t n_chunks = chunk_start[f + 1] - chunk_start[f];
  const int32_t p0 = start[f] + local * kChunk;
  const int32_t p1 = min(start[f + 1], p0 + kChunk);
  const int64_t cols = grad_sum ? D + 1 : D;
  for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) {
    double acc = 0.0;
    if (d < D) {
#pragma unroll 4
      for (int32_t p = p0; p < p1; ++p) {
        const int32_t s = slots[p];
        acc += double(coef[s]) * double(rows[(int64_t(s) / K) * D + d]);
      }
    } else {
      for (int32_t p = p0; p < p1; ++p) acc += double(coef[slots[p]]);
    }
    if (n_chunks == 1) {
      if (d < D) grad[int64_t(f) * D + d] = G(double(grad[int64_t(f) * D + d]) + acc);
      else grad_sum[f] = S(double(grad_sum[f]) + acc);
    } else {
      partial[(int64_t(multi_start[f]) + local) * (D + 1) + d] = acc;
    }
  }
}

// One block per latent with several chunks: their partials, in chunk order, into the gradient.
template <class G, class S>
__global__ void add_partials_kernel(const int32_t* __restrict__ chunk_start, const int32_t* __restrict__ multi_start,
                                    int32_t F, int64_t D, const double* __restrict__ partial, G* __restrict__ grad,
                                    S* __restrict__ grad_sum) {
  for (int32_t f = blockIdx.x; f < F; f += gridDim.x) {
    const int32_t n_chunks = chunk_start[f + 1] - chunk_start[f];
    if (n_chunks <= 1) continue;
    const double* part = partial + int64_t(multi_start[f]) * (D + 1);
    const int64_t cols = grad_sum ? D + 1 : D;
    for (int64_t d = threadIdx.x; d < cols; d += blockDim.x) {
      double acc = 0.0;
      for (int32_t c = 0; c < n_chunks; ++c) acc += part[int64_t(c) * (D + 1) + d];
      if (d < D) grad[int64_t(f) * D + d] = G(double(grad[int64_t(f) * D + d]) + acc);
      else grad_sum[f] = S(double(grad_sum[f]) + acc);
    }
  }
}

template <class T>
T* scratch(int64_t n, cudaStream_t stream) {
  void* p = nullptr;
  SAE_CUDA_CHECK(cudaMallocAsync(&p, sizeof(T) * size_t(n > 0 ? n : 1), stream));
  return static_cast<T*>(p);
}
void release(void* p, cudaStream_t stream) { SAE_CUDA_CHECK(cudaFreeAsync(p, stream)); }

int bits_for(int64_t v) {  // bits to hold values 0..v
  int b = 1;
  while ((int64_t(1) << b) <= v) ++b;
  return b;
}

// grad[f,:] += sum over slots s with idx[s] = f of coef[s] * rows[s / K, :] (and grad_sum[f]
// += sum of coef[s], when grad_sum is not null), in increasing s per latent.
template <class G, class S>
void accumulate_by_latent(const int32_t* idx, const float* coef, const float* rows, int64_t N, int64_t K,
                          int64_t D, int64_t F, G* grad, S* grad_sum, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0 && F >= 0, "negative size");
  const int64_t NK = N * K;
  if (NK == 0 || F == 0) return;
  SAE_ASSERT(NK < int64_t(INT32_MAX) && F < int64_t(INT32_MAX), "too many slots or latents for int32 indexing");
  const int32_t nk = int32_t(NK), f32 = int32_t(F);

  int32_t* keys_in = scratch<int32_t>(NK, stream);
  int32_t* keys_out = scratch<int32_t>(NK, stream);
  int32_t* slots_in = scratch<int32_t>(NK, stream);
  int32_t* slots_out = scratch<int32_t>(NK, stream);
  int32_t* start = scratch<int32_t>(F + 1, stream);
  int32_t* chunks = scratch<int32_t>(F + 1, stream);
  int32_t* chunk_start = scratch<int32_t>(F + 1, stream);
  int32_t* multi = scratch<int32_t>(F + 1, stream);
  int32_t* multi_start = scratch<int32_t>(F + 1, stream);

  make_sort_input_kernel<<<grid_for(NK, 256), 256, 0, stream>>>(idx, NK, f32, keys_in, slots_in);
  SAE_CUDA_LAUNCH_CHECK();
  // Stable LSD radix sort on the low bits_for(F) bits of the key.
  const int end_bit = bits_for(F);
  size_t temp_sort = 0, temp_scan = 0;
  SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_sort, keys_in, keys_out, slots_in, slots_out, nk, 0,
                                                 end_bit, stream));
  SAE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, temp_scan, chunks, chunk_start, f32 + 1, stream));
  const size_t temp_bytes = temp_sort > temp_scan ? temp_sort : temp_scan;
  void* temp = scratch<char>(int64_t(temp_bytes), stream);
  size_t tb = temp_bytes;
  SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, tb, keys_in, keys_out, slots_in, slots_out, nk, 0, end_bit,
                                                 stream));
  latent_ranges_kernel<<<grid_for(F + 1, 256), 256, 0, stream>>>(keys_out, nk, f32, start, chunks, multi);
  SAE_CUDA_LAUNCH_CHECK();
  tb = temp_bytes;
  SAE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, tb, chunks, chunk_start, f32 + 1, stream));
  tb = temp_bytes;
  SAE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, tb, multi, multi_start, f32 + 1, stream));

  // Upper bounds, so that no count has to come back to the host: chunks <= NK/kChunk + one
  // per non-empty latent; partial rows <= 2 NK / kChunk (a latent with c > kChunk slots has
  // ceil(c / kChunk) < 2 c / kChunk chunks).
  const int64_t max_chunks = (NK + kChunk - 1) / kChunk + (F < NK ? F : NK);
  const int64_t max_partial_rows = 2 * NK / kChunk + 1;
  SAE_ASSERT(max_chunks < int64_t(INT32_MAX), "too many chunks");
  double* partial = scratch<double>(max_partial_rows * (D + 1), stream);
  const int threads = block_for_columns(D + 1);
  accumulate_chunks_kernel<G, S><<<unsigned(max_chunks), threads, 0, stream>>>(
      start, chunk_start, multi_start, slots_out, f32, coef, rows, K, D, grad, grad_sum, partial);
  SAE_CUDA_LAUNCH_CHECK();
  add_partials_kernel<G, S><<<unsigned(F < 65536 ? F : 65536), threads, 0, stream>>>(chunk_start, multi_start, f32, D,
                                                                                   partial, grad, grad_sum);
  SAE_CUDA_LAUNCH_CHECK();

  for (void* p : {static_cast<void*>(keys_in), static_cast<void*>(keys_out), static_cast<void*>(slots_in),
                  static_cast<void*>(slots_out), static_cast<void*>(start), static_cast<void*>(chunks),
                  static_cast<void*>(chunk_start), static_cast<void*>(multi), static_cast<void*>(multi_start), temp,
                  static_cast<void*>(partial)})
    release(p, stream);
}

template <class G>
void decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N, int64_t K, const float* W_dec,
                     int64_t D, int64_t F, float* dval, G* grad_W_dec, cudaStream_t stream) {
  SAE_ASSERT(N >= 0 && K >= 0 && D >= 0 && F >= 0, "negative size");
  const int64_t NK = N * K;
  if (NK == 0) return;
  const int64_t warps_needed = NK, per_block = 8;  // 256 threads
  const int64_t blocks = (warps_needed + per_block - 1) / per_block;
  slot_dot_kernel<<<unsigned(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(idx, g, NK, K, W_dec, D, dval);
  SAE_CUDA_LAUNCH_CHECK();
  accumulate_by_latent<G, G>(idx, val, g, N, K, D, F, grad_W_dec, static_cast<G*>(nullptr), stream);
}

}  // namespace

void sparse_decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N,
                            int64_t K, const float* W_dec, int64_t D, int64_t F, float* dval,
                            double* grad_W_dec, cudaStream_t stream) {
  decode_backward<double>(idx, val, g, N, K, W_dec, D, F, dval, grad_W_dec, stream);
}
void sparse_decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N,
                            int64_t K, const float* W_dec, int64_t D, int64_t F, float* dval,
                            float* grad_W_dec, cudaStream_t stream) {
  decode_backward<float>(idx, val, g, N, K, W_dec, D, F, dval, grad_W_dec, stream);
}

void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, double* grad_W_encT,
                            double* grad_b_enc, cudaStream_t stream) {
  accumulate_by_latent<double, double>(idx, dpre, xc, N, K, D, F, grad_W_encT, grad_b_enc, stream);
}
void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, float* grad_W_encT,
                            float* grad_b_enc, cudaStream_t stream) {
  accumulate_by_latent<float, float>(idx, dpre, xc, N, K, D, F, grad_W_encT, grad_b_enc, stream);
}
void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, float* grad_W_encT,
                            double* grad_b_enc, cudaStream_t stream) {
  accumulate_by_latent<float, double>(idx, dpre, xc, N, K, D, F, grad_W_encT, grad_b_enc, stream);
}

void per_latent_sums(const int32_t* idx, const float* coef, int64_t N, int64_t K, int64_t F, double* out,
                     cudaStream_t stream) {
  // No weight rows (D = 0): only the coefficient sums.
  accumulate_by_latent<double, double>(idx, coef, nullptr, N, K, 0, F, nullptr, out, stream);
}

}  // namespace saepipe::cuda
