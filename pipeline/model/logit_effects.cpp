// Shape legend: F latents, G latents per block, D d_model, V vocab, L tokens kept at each end,
// H histogram bins.
#include "pipeline/model/logit_effects.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/model/unembed.hpp"

namespace saepipe {

namespace {
constexpr int64_t kLatentBlock = 64;  // G: effects [G, V] at a time (12.9 MB for GPT-2)
}  // namespace

void logit_effects(const TransformerModel& m, const float* W_dec, int64_t F, int64_t D, int64_t L, int64_t H,
                   LogitEffects& out) {
  const int64_t V = m.vocab_size();
  SAE_ASSERT(D == m.d_model(), "decoder width differs from d_model");
  SAE_ASSERT(L >= 1 && L <= V && H >= 1 && F >= 0, "bad logit-effect sizes");
  const FinalNorm norm = m.final_norm();
  const float* lnw = norm.weight;
  SAE_ASSERT(lnw != nullptr, "logit_effects needs the final norm (load_transformer_full)");
  out.n_logit_tokens = L, out.hist_bins = H;
  out.logit_top_ids.assign(size_t(F * L), 0), out.logit_top_values.assign(size_t(F * L), 0);
  out.logit_bottom_ids.assign(size_t(F * L), 0), out.logit_bottom_values.assign(size_t(F * L), 0);
  out.logit_hist_counts.assign(size_t(F * H), 0);
  out.logit_hist_lo.assign(size_t(F), 0), out.logit_hist_hi.assign(size_t(F), 0);

  std::vector<float> u(size_t(kLatentBlock * D)), eff(size_t(kLatentBlock * V));  // [G,D], [G,V]
  for (int64_t f0 = 0; f0 < F; f0 += kLatentBlock) {
    const int64_t G = std::min(kLatentBlock, F - f0);
    for (int64_t g = 0; g < G; ++g) {  // u = centre(W_dec[f]) * norm.weight (RMSNorm: no centring)
      const float* w = W_dec + (f0 + g) * D;
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += w[d];
      const float mean = norm.rms ? 0.0f : float(s / double(D));
      for (int64_t d = 0; d < D; ++d) u[size_t(g * D + d)] = (w[d] - mean) * lnw[d];
    }
    unembed(m, u.data(), G, eff.data());  // [G,V]
    int64_t bad = -1;
#pragma omp parallel for schedule(static) reduction(max : bad)
    for (int64_t g = 0; g < G; ++g) {  // range and histogram
      const float* e = eff.data() + g * V;
      float lo = e[0], hi = e[0];
      bool finite = true;
      for (int64_t v = 0; v < V; ++v) {
        finite = finite && std::isfinite(e[v]);
        lo = std::min(lo, e[v]), hi = std::max(hi, e[v]);
      }
      if (!finite) {
        bad = std::max(bad, f0 + g);
        continue;
      }
      const int64_t f = f0 + g;
      out.logit_hist_lo[size_t(f)] = lo, out.logit_hist_hi[size_t(f)] = hi;
      int64_t* counts = out.logit_hist_counts.data() + f * H;
      const double scale = hi > lo ? double(H) / (double(hi) - double(lo)) : 0.0;
      for (int64_t v = 0; v < V; ++v) {
        const int64_t b = int64_t(std::floor((double(e[v]) - double(lo)) * scale));
        ++counts[std::clamp<int64_t>(b, 0, H - 1)];
      }
    }
    if (bad >= 0)
      corrupt_error("SAE decoder row " + std::to_string(bad) + " has non-finite direct logit effects");
    // Top L, then bottom L as the top L of the negated effects (ties: lower id first in both).
    cpu::topk_rows(eff.data(), G, V, L, nullptr, out.logit_top_ids.data() + f0 * L,
                   out.logit_top_values.data() + f0 * L);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < G * V; ++i) eff[size_t(i)] = -eff[size_t(i)];
    float* bottom = out.logit_bottom_values.data() + f0 * L;
    cpu::topk_rows(eff.data(), G, V, L, nullptr, out.logit_bottom_ids.data() + f0 * L, bottom);
    for (int64_t i = 0; i < G * L; ++i) bottom[i] = -bottom[i];
  }
}

}  // namespace saepipe
