// The pieces in which the SAE architectures differ, on the GPU: the device counterparts of
// pipeline/sae/architectures.hpp (arch_topk.cpp is kernels' topk_rows + relu_slots). Device
// pointers, a stream last; nothing synchronises unless it says so.
//
// Shape legend: N tokens, D d_in, F d_sae, W selection width.
//   pre [N,F]; idx, val, dval [N,W] (empty slot: idx -1, val 0; active latents in increasing f).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>

namespace saepipe::cuda {

// select_above in two calls: count_above gives the width (the largest count of any row, at
// least 1; synchronises to bring it to the host), fill_above writes idx/val [N,W]. A latent is
// selected when pre > 0 and pre > its threshold: expf(log_threshold[f]) when log_threshold is
// not null (jumprelu), else thr_all. count [N] is scratch the caller owns.
int64_t count_above(const float* pre, int64_t N, int64_t F, const float* log_threshold, float thr_all, int32_t* count,
                    cudaStream_t stream);
void fill_above(const float* pre, int64_t N, int64_t F, const float* log_threshold, float thr_all, int64_t W,
                int32_t* idx, float* val, cudaStream_t stream);

// batchtopk: the kth largest positive value of pre [N,F] over every rank of the data group, 0
// when there are fewer than kth (as batchtopk_threshold). An exact radix select on the float
// bits in three passes (10, 11 and 10 bits): each pass counts this rank's values under the
// prefix fixed so far into a histogram, which `sum_over_ranks` adds up over the group (null:
// one rank), so every rank fixes the same digits. Synchronises once per pass.
using SumOverRanks = std::function<void(int64_t* counts, int64_t n)>;
float kth_largest_positive(const float* pre, int64_t N, int64_t F, int64_t kth, const SumOverRanks& sum_over_ranks,
                           cudaStream_t stream);

// relu: as relu_l1_backward. norm [F] (double, scratch) gets the decoder row norms, zsum [F]
// (double, scratch) the per-latent sums of z; dval on active slots += (coef/B) ||W_dec,f||,
// grad_W_dec[f] += (coef/B) zsum[f] W_dec,f / ||W_dec,f||, and *penalty (device, double) +=
// coef * sum_f zsum[f] ||W_dec,f|| (the per-slot sum of the CPU, grouped by latent).
void relu_l1_backward(const float* W_dec, const int32_t* idx, const float* val, int64_t N, int64_t W, int64_t D,
                      int64_t F, double coef, int64_t global_batch, float* dval, double* grad_W_dec, double* norm,
                      double* zsum, double* penalty, cudaStream_t stream);

// jumprelu: as jumprelu_backward's threshold gradient: for each latent f, summed over the
// rows n in increasing order (one thread per latent),
//   grad_log_threshold[f] += theta_f * sum_n [<W_dec,f, g_n> (-theta_f/eps) - (l0_coef/B)/eps] K((pre_nf - theta_f)/eps)
// with theta = exp(log_threshold) (double). g [N,D] is dLoss/dx_hat.
void jumprelu_threshold_backward(const float* pre, const float* g, const float* W_dec, const float* log_threshold,
                                 int64_t N, int64_t D, int64_t F, double l0_coef, double bandwidth,
                                 int64_t global_batch, double* grad_log_threshold, cudaStream_t stream);

}  // namespace saepipe::cuda
