// What the CUDA training steps (train_step.cu and train_step_sharded.cu) share around DeviceSae:
// small kernels for the buffer's tail, the gradient norm and clipping, the rounding to float
// (device pointers, a stream last; every sum in a fixed order), and the precision setting.
//
// Shape legend: N rows, D d_in, F latents, n values of a float64 gradient.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {

// train.precision: "fp32" or "bf16" (else a user error naming the key).
GemmPrecision gemm_precision(const std::string& precision);

// Partial sums of a squared norm: squared_norm_partials writes kNormBlocks of them.
constexpr int kNormBlocks = 1024;

// *out = sum_n ||x_n||^2 (double) of x [N,D]; rows [N] is scratch.
void sum_of_squares(const float* x, int64_t N, int64_t D, double* rows, double* out, cudaStream_t stream);
// *out = sum of x[0, n) (one block, fixed order).
void sum_doubles(const double* x, int64_t n, double* out, cudaStream_t stream);
// The step buffer's tail from DeviceSae's counters: out_fire[f] = fire[f] (as doubles) and
// out_scalars [sse, active, aux, (sum x^2 left alone), penalty] from sums [kStepSums].
void pack_step_tail(const unsigned long long* fire, int64_t F, const double* sums, double* out_fire,
                    double* out_scalars, cudaStream_t stream);
// partial[b] (b < kNormBlocks) = the b-th block's sum of g[i]^2 over g [n].
void squared_norm_partials(const double* g, int64_t n, double* partial, cudaStream_t stream);
// *clip = grad_clip / sqrt(sum of partial [n]) when that norm exceeds grad_clip, else 1.
void clip_factor(const double* partial, int64_t n, double grad_clip, double* clip, cudaStream_t stream);
// grad[i] = float(g[i] * *clip) (clip null: 1). [n]
void to_float_scaled(const double* g, int64_t n, const double* clip, float* grad, cudaStream_t stream);

}  // namespace saepipe::cuda
