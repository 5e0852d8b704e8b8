#include "pipeline/sae/resample.hpp"

#include <algorithm>
#include <cmath>

#include "pipeline/core/errors.hpp"

namespace saepipe {

namespace {
double row_norm(const float* r, int64_t D) {
  double ss = 0;
  for (int64_t d = 0; d < D; ++d) ss += double(r[d]) * double(r[d]);
  return std::sqrt(ss);
}
}  // namespace

void resample_latents(SaeParams& p, AdamState& adam, const std::vector<int32_t>& latents, const float* inputs,
                      const std::vector<uint8_t>& dead) {
  const int64_t D = p.d_in, F = p.d_sae;
  double enc_sum = 0, dec_sum = 0;
  int64_t live = 0;
  for (int64_t f = 0; f < F; ++f)
    if (!dead[f]) {
      enc_sum += row_norm(p.W_encT() + f * D, D);
      dec_sum += row_norm(p.W_dec() + f * D, D);
      ++live;
    }
  const double enc_scale = 0.2 * (live > 0 ? enc_sum / double(live) : 1.0);
  const double dec_scale = live > 0 ? dec_sum / double(live) : 1.0;
  const bool have_moments = int64_t(adam.m.size()) == p.size();
  for (size_t r = 0; r < latents.size(); ++r) {
    const int64_t f = latents[r];
    SAE_ASSERT(f >= 0 && f < F, "resampled latent out of range");
    const float* in = inputs + int64_t(r) * D;
    const double n = row_norm(in, D);
    if (n == 0) continue;
    for (int64_t d = 0; d < D; ++d) {
      p.W_dec()[f * D + d] = float(double(in[d]) / n * dec_scale);
      p.W_encT()[f * D + d] = float(double(in[d]) / n * enc_scale);
    }
    p.b_enc()[f] = 0.0f;
    if (!have_moments) continue;
    for (int64_t off : {p.off_W_dec() + f * D, p.off_W_encT() + f * D}) {
      std::fill(adam.m.begin() + off, adam.m.begin() + off + D, 0.0f);
      std::fill(adam.v.begin() + off, adam.v.begin() + off + D, 0.0f);
    }
    adam.m[size_t(p.off_b_enc() + f)] = adam.v[size_t(p.off_b_enc() + f)] = 0.0f;
  }
}

int64_t sample_proportional(const std::vector<double>& prefix, double u) {
  SAE_ASSERT(!prefix.empty() && prefix.back() > 0, "nothing to sample from");
  const double target = u * prefix.back();
  const auto it = std::upper_bound(prefix.begin(), prefix.end(), target);
  return std::min<int64_t>(int64_t(it - prefix.begin()), int64_t(prefix.size()) - 1);
}

}  // namespace saepipe
