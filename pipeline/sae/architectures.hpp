// The pieces in which the SAE architectures differ (pipeline/sae/sae.hpp holds the shared
// forward/backward in forward_backward.cpp). One file each: arch_topk.cpp, arch_batchtopk.cpp,
// arch_relu.cpp, arch_jumprelu.cpp, arch_matryoshka.cpp, arch_gated.cpp; select_above (shared by
// the threshold rules) lives in arch_relu.cpp.
//
// Shape legend: N tokens, D d_in, O d_out, F d_sae, K k, W selection width, G gate width,
// J matryoshka prefixes, L crosscoder layers.
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

// relu: adds the L1 term's gradient (coef/B) * n_f to dval (dLoss/dpre on active slots) and
// (coef/B) * z * dn_f/dW_dec,f to grad_W_dec, with n_f = ||W_dec,f|| or, for a crosscoder, the sum
// of the L blocks' norms sum_l ||W_dec,f^l||; returns sum_n of coef * sum_f z_nf n_f.
double relu_l1_backward(const SaeParams& p, const int32_t* idx, const float* val, int64_t N, int64_t W,
                        double coef, int64_t global_batch, float* dval, double* grad_W_dec);

// jumprelu: thresholds exp(log_threshold); adds the pseudo-gradient of the loss with respect
// to log_threshold (the reconstruction through z = pre * H(pre - theta) and the L0 penalty,
// each through the rectangle kernel K(u) = 1 for |u| < 1/2 of width `bandwidth`):
//   d/d theta_f = sum_n [ <W_dec,f, g_n> * (-theta_f / eps) + (l0_coef / B) * (-1 / eps) ] K((pre_nf - theta_f)/eps)
// and the chain rule d/d log theta = theta * d/d theta. g [N,O] is dLoss/dx_hat. Returns
// sum_n of l0_coef * #active_n (the penalty).
double jumprelu_backward(const SaeParams& p, const float* pre, const float* g, int64_t N, double l0_coef,
                         double bandwidth, int64_t global_batch, const int32_t* idx, int64_t W,
                         double* grad_log_threshold);

// matryoshka: with x_hat_j = b_dec (+ skip_n) + sum over the slots with f < M_j of z W_dec,f
// (prefixes M_1 < ... < M_J = F; an empty list is the whole dictionary) and e_j = x_hat_j - y,
// writes ws.prefix_g[j] = (2/B) sum_{i >= j} e_i ([J,N,O]; [0] is dLoss/d b_dec and skip), sets
// dval (dLoss/dz = <W_dec,f, ws.prefix_g[group of f]>) and adds z * prefix_g[group] to grad_W_dec.
// With a latent shard, p holds latents [first, first + d_sae) of `total` (idx local), the
// prefixes count over all of them: each shard sums its latents per group in float64, the group
// adds them (sum_rows), and every shard then has every prefix's reconstruction and the same sums.
struct MatryoshkaSums {
  double full_sq = 0;    // sum_n ||e_J||^2 (the whole dictionary)
  double prefix_sq = 0;  // sum_n sum_{j < J} ||e_j||^2
};
MatryoshkaSums matryoshka_backward(const SaeParams& p, const std::vector<int64_t>& prefixes, const int32_t* idx,
                                   const float* val, int64_t N, int64_t W, const float* skip_out, const float* y,
                                   int64_t global_batch, SaeWorkspace& ws, float* dval, double* grad_W_dec,
                                   const LatentShard* shard = nullptr);
// The prefix sizes in force: `prefixes` with d_sae appended when it is not the last.
std::vector<int64_t> matryoshka_groups(const std::vector<int64_t>& prefixes, int64_t d_sae);

// gated: the gate set (pre > 0) into ws.gate_idx / gate_val (= ReLU(pre)), ws.gate_width; z =
// ReLU(exp(r_mag) (pre - b_enc) + b_mag) on it into idx / val (slots where that is 0 emptied).
// Returns W (= the gate width).
int64_t gated_select(const SaeParams& p, const float* pre, int64_t N, SaeWorkspace& ws);
// gated backward, after the decoder's: ws.dval holds dLoss/dz. Adds the magnitude path's
// gradients to r_mag and b_mag and turns ws.dval into its d pre (dz * exp(r_mag)); puts the gate
// path's d pre in ws.gate_dval: (l1_coef / B) + <W_dec,f, (2/B)(x_hat_gate - y)> with x_hat_gate =
// W_dec^T ReLU(pre) + b_dec (+ skip) through the decoder held constant. Returns sum_n of
// l1_coef * sum ReLU(pre) + ||x_hat_gate - y||^2. With a latent shard, x_hat_gate is summed over the
// shard group (every shard's gate set) and the error counted by the lead shard.
double gated_backward(const SaeParams& p, const float* pre, const float* y, const float* skip_out, int64_t N,
                      int64_t global_batch, double l1_coef, SaeWorkspace& ws, double* grad,
                      const LatentShard* shard = nullptr);

}  // namespace saepipe
