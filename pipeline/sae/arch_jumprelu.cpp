// jumprelu (Rajamanoharan et al. 2024; Gemma Scope): z = pre * H(pre - theta) with learned
// theta = exp(log_threshold) > 0 and an L0 penalty. H has no useful derivative, so theta
// learns through a straight-through pseudo-derivative: the rectangle kernel
// K(u) = 1 for |u| < 1/2, scaled by the bandwidth eps, stands in for the Dirac delta.
// pre itself gets the plain gradient on active latents (the shared backward does that).
//
// Shape legend: N tokens, D d_out, F d_sae.  pre [N,F]; g [N,D]; W_dec [F,D].
#include <cmath>

#include "pipeline/sae/architectures.hpp"

namespace saepipe {

double jumprelu_backward(const SaeParams& p, const float* pre, const float* g, int64_t N, double l0_coef,
                         double bandwidth, int64_t global_batch, const int32_t* idx, int64_t W,
                         double* grad_log_threshold) {
  const int64_t D = p.d_out, F = p.d_sae;
  const float* W_dec = p.W_dec();
  std::vector<double> theta(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) theta[f] = std::exp(double(p.log_threshold()[f]));
  const double inv_eps = 1.0 / bandwidth, l0_per_token = l0_coef / double(global_batch);
  // Threads split the latents; each latent sums over tokens in increasing n (deterministic).
#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < F; ++f) {
    const double th = theta[f];
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const double u = (double(pre[n * F + f]) - th) * inv_eps;
      if (!(std::abs(u) < 0.5)) continue;
      double dz = 0.0;  // dLoss/dz_nf = <W_dec,f, g_n>
      for (int64_t d = 0; d < D; ++d) dz += double(W_dec[f * D + d]) * double(g[n * D + d]);
      acc += dz * (-th * inv_eps) + l0_per_token * (-inv_eps);
    }
    grad_log_threshold[f] += th * acc;
  }
  int64_t active = 0;
  for (int64_t s = 0; s < N * W; ++s) active += idx[s] >= 0;
  return l0_coef * double(active);
}

}  // namespace saepipe
