// relu + L1 (Towards Monosemanticity; Anthropic's April 2024 update): z = ReLU(pre) and the
// penalty coef * sum_f z_f ||W_dec,f||, so shrinking decoder rows cannot dodge the L1 and
// the decoder needs no unit-norm constraint. A crosscoder weighs z by the sum of its decoder
// blocks' norms, one per layer (Lindsey et al. 2024). Also select_above, the threshold selection
// shared with batchtopk and jumprelu.
//
// Shape legend: N tokens, D d_out, F d_sae, W selection width, L layers (blocks of w = D / L).
//   pre [N,F]; idx, val, dval [N,W]; W_dec, grad_W_dec [F,D].
#include <algorithm>
#include <cmath>

#include "pipeline/core/errors.hpp"
#include "pipeline/sae/architectures.hpp"

namespace saepipe {

int64_t select_above(const float* pre, int64_t N, int64_t F, const float* thr, float thr_all,
                     std::vector<int32_t>& idx, std::vector<float>& val) {
  std::vector<int64_t> count(static_cast<size_t>(N), 0);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* row = pre + n * F;
    int64_t c = 0;
    for (int64_t f = 0; f < F; ++f) c += (row[f] > 0.0f && row[f] > (thr ? thr[f] : thr_all));
    count[n] = c;
  }
  int64_t W = 1;
  for (int64_t n = 0; n < N; ++n) W = std::max(W, count[n]);
  if (int64_t(idx.size()) < N * W) idx.resize(size_t(N * W));
  if (int64_t(val.size()) < N * W) val.resize(size_t(N * W));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* row = pre + n * F;
    int32_t* oi = idx.data() + n * W;
    float* ov = val.data() + n * W;
    int64_t j = 0;
    for (int64_t f = 0; f < F; ++f)
      if (row[f] > 0.0f && row[f] > (thr ? thr[f] : thr_all)) {
        oi[j] = int32_t(f);
        ov[j++] = row[f];
      }
    for (; j < W; ++j) {
      oi[j] = -1;
      ov[j] = 0.0f;
    }
  }
  return W;
}

double relu_l1_backward(const SaeParams& p, const int32_t* idx, const float* val, int64_t N, int64_t W,
                        double coef, int64_t global_batch, float* dval, double* grad_W_dec) {
  if (coef == 0.0) return 0.0;
  const int64_t D = p.d_out, F = p.d_sae, L = p.layers, w = D / L;
  const float* W_dec = p.W_dec();
  // n_f = sum over the L blocks of their norms (one block for an SAE or transcoder).
  std::vector<double> block_norm(static_cast<size_t>(F * L)), norm(static_cast<size_t>(F), 0.0);
  for (int64_t f = 0; f < F; ++f)
    for (int64_t l = 0; l < L; ++l) {
      double ss = 0.0;
      for (int64_t d = l * w; d < (l + 1) * w; ++d) ss += double(W_dec[f * D + d]) * double(W_dec[f * D + d]);
      block_norm[f * L + l] = std::sqrt(ss);
      norm[f] += block_norm[f * L + l];
    }
  const double c = coef / double(global_batch);
  // Per-latent sum of z in a fixed order (increasing slot) for the decoder-norm gradient.
  std::vector<double> zsum(static_cast<size_t>(F), 0.0);
  double penalty = 0.0;
  for (int64_t s = 0; s < N * W; ++s) {
    const int32_t f = idx[s];
    if (f < 0) continue;
    dval[s] = float(double(dval[s]) + c * norm[f]);
    zsum[f] += double(val[s]);
    penalty += coef * double(val[s]) * norm[f];
  }
#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < F; ++f) {
    if (zsum[f] == 0.0) continue;
    for (int64_t l = 0; l < L; ++l) {
      if (block_norm[f * L + l] == 0.0) continue;
      const double a = c * zsum[f] / block_norm[f * L + l];
      for (int64_t d = l * w; d < (l + 1) * w; ++d) grad_W_dec[f * D + d] += a * double(W_dec[f * D + d]);
    }
  }
  return penalty;
}

}  // namespace saepipe
