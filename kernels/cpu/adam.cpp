// Optimiser-side kernels: Adam, the decoder-gradient projection and row renormalisation.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   p, g, m, v [n] (flat parameter vector); W, grad [F,D] (decoder rows).
#include <cmath>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cpu {

void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, int64_t t) {
  SAE_ASSERT(t >= 1, "Adam step number starts at 1");
  SAE_ASSERT(n >= 0, "negative size");
  // Bias corrections in double: beta2^t is close to 1 for many steps.
  const double bc1 = 1.0 - std::pow(double(beta1), double(t));
  const double bc2 = 1.0 - std::pow(double(beta2), double(t));
  const float step = float(double(lr) / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float b1 = beta1, b2 = beta2, c1 = 1.0f - beta1, c2 = 1.0f - beta2;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    // p -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
    p[i] -= step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

void project_out_parallel(const float* W, float* grad, int64_t F, int64_t D) {
  SAE_ASSERT(F >= 0 && D >= 0, "negative size");
#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < F; ++f) {
    const float* w = W + f * D;
    float* gr = grad + f * D;
    double wg = 0.0, ww = 0.0;
#pragma omp simd reduction(+ : wg, ww)
    for (int64_t d = 0; d < D; ++d) {
      wg += double(w[d]) * double(gr[d]);
      ww += double(w[d]) * double(w[d]);
    }
    if (ww == 0.0) continue;  // no direction to project out
    const double c = wg / ww;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) gr[d] = float(double(gr[d]) - c * double(w[d]));
  }
}

void normalize_rows(float* W, int64_t F, int64_t D) {
  SAE_ASSERT(F >= 0 && D >= 0, "negative size");
#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < F; ++f) {
    float* w = W + f * D;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; ++d) ss += double(w[d]) * double(w[d]);
    if (ss == 0.0) continue;
    const double inv = 1.0 / std::sqrt(ss);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) w[d] = float(double(w[d]) * inv);
  }
}

}  // namespace saepipe::cpu
