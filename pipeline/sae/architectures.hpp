// The pieces in which the SAE architectures differ (pipeline/sae/sae.hpp holds the shared
// forward/backward). One file each: arch_topk.cpp, arch_batchtopk.cpp, arch_relu.cpp,
// arch_jumprelu.cpp; select_above (shared by the threshold rules) lives in arch_relu.cpp.
//
// Shape legend: N tokens, D d_in, F d_sae, K k, W selection width.
//   pre [N,F]; idx, val [N,W] (empty slot: idx -1, val 0; active latents in increasing f).
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/sae/sae.hpp"

namespace saepipe {

// topk: per row the k largest pre, ReLU (non-positive slots emptied). W = k.
void select_topk(const float* pre, int64_t N, int64_t F, int64_t K, int32_t* idx, float* val);

// Latents with pre > thr (thr_f = thr[f] if thr is not null, else thr_all) and pre > 0, per
// row in increasing f; returns W (the largest count of any row, at least 1). idx/val are
// resized to N*W.
int64_t select_above(const float* pre, int64_t N, int64_t F, const float* thr, float thr_all,
                     std::vector<int32_t>& idx, std::vector<float>& val);

// batchtopk: the threshold of this batch, the (global_batch*k)-th largest positive pre over
// all ranks (0 when there are fewer). Selection is then pre >= threshold and pre > 0, which
// depends only on the global set of values, not on how rows are split over ranks.
float batchtopk_threshold(const float* pre, int64_t N, int64_t F, int64_t k, int64_t global_batch,
                          const KthLargestFn& kth_largest, std::vector<float>& candidates);

// relu: adds the L1 term's gradient (coef/B) * ||W_dec,f|| to dval (dLoss/dpre on active
// slots) and (coef/B) * z * W_dec,f / ||W_dec,f|| to grad_W_dec; returns sum_n of
// coef * sum_f z_nf ||W_dec,f||.
double relu_l1_backward(const SaeParams& p, const int32_t* idx, const float* val, int64_t N, int64_t W,
                        double coef, int64_t global_batch, float* dval, double* grad_W_dec);

// jumprelu: thresholds exp(log_threshold); adds the pseudo-gradient of the loss with respect
// to log_threshold (the reconstruction through z = pre * H(pre - theta) and the L0 penalty,
// each through the rectangle kernel K(u) = 1 for |u| < 1/2 of width `bandwidth`):
//   d/d theta_f = sum_n [ <W_dec,f, g_n> * (-theta_f / eps) + (l0_coef / B) * (-1 / eps) ] K((pre_nf - theta_f)/eps)
// and the chain rule d/d log theta = theta * d/d theta. g [N,D] is dLoss/dx_hat. Returns
// sum_n of l0_coef * #active_n (the penalty).
double jumprelu_backward(const SaeParams& p, const float* pre, const float* g, int64_t N, double l0_coef,
                         double bandwidth, int64_t global_batch, const int32_t* idx, int64_t W,
                         double* grad_log_threshold);

}  // namespace saepipe
