#include "pipeline/stats/ground_truth_match.hpp"

#include <algorithm>

#include "kernels/kernels.hpp"

namespace saepipe {

GroundTruthMatch match_ground_truth(const std::vector<float>& gt, int64_t G, const float* W_dec, int64_t F, int64_t D) {
  std::vector<float> dec(W_dec, W_dec + F * D);
  cpu::normalize_rows(dec.data(), F, D);  // cosine, whatever the decoder's norms
  std::vector<float> gtn(gt);
  cpu::normalize_rows(gtn.data(), G, D);
  GroundTruthMatch m;
  m.latent_best.assign(size_t(F), -1);
  m.latent_cos.assign(size_t(F), -2.0f);
  const int64_t kBlock = 1024;  // rows of true features per block: memory stays kBlock x F
  std::vector<float> cos(size_t(std::min(kBlock, G) * F));
  // A zero row is a feature absent from this hook (synthetic.hpp: hook_absent): not counted.
  std::vector<uint8_t> present(size_t(G), 0);
  int64_t n_present = 0;
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t d = 0; d < D && !present[g]; ++d) present[g] = gtn[size_t(g * D + d)] != 0.0f;
    n_present += present[g];
  }
  m.feature_best.assign(size_t(G), -2.0f);
  for (int64_t g0 = 0; g0 < G; g0 += kBlock) {
    const int64_t nb = std::min(kBlock, G - g0);
    cpu::matmul(false, true, nb, F, D, 1.0f, gtn.data() + g0 * D, D, dec.data(), D, 0.0f, cos.data(), F);
    for (int64_t g = 0; g < nb; ++g) {
      if (!present[size_t(g0 + g)]) continue;
      float best = -2.0f;
      for (int64_t f = 0; f < F; ++f) {
        const float c = cos[size_t(g * F + f)];
        best = std::max(best, c);
        if (c > m.latent_cos[size_t(f)]) m.latent_cos[size_t(f)] = c, m.latent_best[size_t(f)] = g0 + g;
      }
      m.feature_best[size_t(g0 + g)] = best;
    }
  }
  m.n_present = n_present;
  summarise_ground_truth_match(m);
  return m;
}

void summarise_ground_truth_match(GroundTruthMatch& m) {
  double sum = 0;
  int64_t n09 = 0, n099 = 0;
  for (const float best : m.feature_best) {
    if (best < -1.5f) continue;  // absent from this hook
    sum += best;
    n09 += best >= 0.9f;
    n099 += best >= 0.99f;
  }
  m.mmcs = m.frac_09 = m.frac_099 = 0;
  if (m.n_present == 0) return;
  m.mmcs = sum / double(m.n_present);
  m.frac_09 = double(n09) / double(m.n_present);
  m.frac_099 = double(n099) / double(m.n_present);
}

}  // namespace saepipe
