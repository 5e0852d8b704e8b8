// gated (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse
// Autoencoders"): whether a latent fires and how strongly are separate paths that share W_enc.
//   pi_gate = W_enc xc + b_gate  (= pre, b_gate stored as b_enc)     fires when pi_gate > 0
//   pi_mag  = exp(r_mag) (W_enc xc) + b_mag = exp(r_mag) (pre - b_gate) + b_mag
//   z = 1[pi_gate > 0] ReLU(pi_mag)
// The Heaviside passes no gradient, so the gate path learns from its own terms: an L1 penalty
// on ReLU(pi_gate) and the error of x_hat_gate = W_dec^T ReLU(pi_gate) + b_dec reconstructed
// through a frozen copy of the decoder (the gradient reaches only W_enc, b_gate and b_dec via xc).
// Decoder rows are kept at unit norm, so the L1 needs no decoder-norm weight.
//
// Shape legend: N tokens, O d_out, F d_sae, G gate width (the most gates open in a row).
//   pre [N,F]; gate_idx, gate_val, gate_dval, idx, val, dval [N,G]; y, skip_out, gate_recon [N,O].
#include <cmath>

#include "kernels/kernels.hpp"
#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/sae_internal.hpp"

namespace saepipe {

int64_t gated_select(const SaeParams& p, const float* pre, int64_t N, SaeWorkspace& ws) {
  const int64_t F = p.d_sae;
  const int64_t G = select_above(pre, N, F, nullptr, 0.0f, ws.gate_idx, ws.gate_val);
  ws.gate_width = G;
  sae_detail::grow(ws.idx, N * G);
  sae_detail::grow(ws.val, N * G);
  const float* r_mag = p.r_mag();
  const float* b_mag = p.b_mag();
  const float* b_gate = p.b_enc();
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < N * G; ++s) {
    const int32_t f = ws.gate_idx[s];
    float z = 0.0f;
    if (f >= 0) {
      const int64_t n = s / G;
      z = std::max(0.0f, std::exp(r_mag[f]) * (pre[n * F + f] - b_gate[f]) + b_mag[f]);
    }
    ws.idx[s] = z > 0.0f ? f : -1;
    ws.val[s] = z;
  }
  return G;
}

double gated_backward(const SaeParams& p, const float* pre, const float* y, const float* skip_out, int64_t N,
                      int64_t global_batch, double l1_coef, SaeWorkspace& ws, double* grad, const LatentShard* shard) {
  const int64_t O = p.d_out, F = p.d_sae, G = ws.gate_width;
  const double two_over_B = 2.0 / double(global_batch), l1_per_token = l1_coef / double(global_batch);
  const float* r_mag = p.r_mag();
  const float* b_gate = p.b_enc();
  double* g_r = grad + p.off_r_mag();
  double* g_b_mag = grad + p.off_b_mag();

  // Magnitude path: dm = dLoss/dz on the z slots. Per-latent sums in increasing slot order.
  std::vector<double> sum_dm(static_cast<size_t>(F), 0.0), sum_dr(static_cast<size_t>(F), 0.0);
  for (int64_t s = 0; s < N * G; ++s) {
    const int32_t f = ws.idx[s];
    if (f < 0) continue;
    const double dm = ws.dval[s], e = std::exp(double(r_mag[f]));
    sum_dm[f] += dm;
    sum_dr[f] += dm * e * (double(pre[(s / G) * F + f]) - double(b_gate[f]));
    ws.dval[s] = float(dm * e);  // d pre through the magnitude path (onto W_enc only)
  }
  for (int64_t f = 0; f < F; ++f) g_b_mag[f] += sum_dm[f], g_r[f] += sum_dr[f];

  // Gate path: x_hat_gate through the decoder held constant, summed in float64 and rounded once
  // (sharded: each shard's latents, added over the shard group, as the main reconstruction).
  sae_detail::grow(ws.gate_recon, N * O);
  sae_detail::grow(ws.gate_dval, N * G);
  sae_detail::grow(ws.recon64, N * O);
  cpu::sparse_decode_f64(ws.gate_idx.data(), ws.gate_val.data(), N, G, p.W_dec(), O, ws.recon64.data());
  if (shard) shard->sum_rows(ws.recon64.data(), N, O);  // a collective over the shard group
  const float* b_dec = p.b_dec();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < O; ++d) ws.gate_recon[n * O + d] = float(ws.recon64[n * O + d] + double(b_dec[d]));
  // The gate error is the group's: one shard counts it; the L1 is over each shard's own latents.
  const bool lead = !shard || shard->lead;
  std::vector<double> row(static_cast<size_t>(N));
  const float* W_dec = p.W_dec();
#pragma omp parallel
  {
    std::vector<double> g(static_cast<size_t>(O));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      double sq = 0, l1 = 0;
      for (int64_t d = 0; d < O; ++d) {
        const double e = double(ws.gate_recon[n * O + d]) + (skip_out ? double(skip_out[n * O + d]) : 0.0) -
                         double(y[n * O + d]);
        sq += e * e;
        g[d] = two_over_B * e;
      }
      for (int64_t j = 0; j < G; ++j) {
        const int32_t f = ws.gate_idx[n * G + j];
        if (f < 0) {
          ws.gate_dval[n * G + j] = 0.0f;
          continue;
        }
        double dot = 0;
        for (int64_t d = 0; d < O; ++d) dot += double(W_dec[int64_t(f) * O + d]) * g[d];
        ws.gate_dval[n * G + j] = float(dot + l1_per_token);
        l1 += ws.gate_val[n * G + j];
      }
      row[n] = l1_coef * l1 + (lead ? sq : 0.0);
    }
  }
  double penalty = 0;
  for (int64_t n = 0; n < N; ++n) penalty += row[n];
  return penalty;
}

}  // namespace saepipe
