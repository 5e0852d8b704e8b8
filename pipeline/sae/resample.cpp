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

void latent_row_norms(const SaeParams& p, double* enc, double* dec) {
  const int64_t D = p.d_in;
  for (int64_t f = 0; f < p.d_sae; ++f) {
    enc[f] = row_norm(p.W_encT() + f * D, D);
    dec[f] = row_norm(p.W_dec() + f * D, D);
  }
}

ResampleScales resample_scales(const double* enc, const double* dec, const std::vector<uint8_t>& dead) {
  double enc_sum = 0, dec_sum = 0;
  int64_t live = 0;
  for (size_t f = 0; f < dead.size(); ++f)
    if (!dead[f]) {
      enc_sum += enc[f];
      dec_sum += dec[f];
      ++live;
    }
  return {0.2 * (live > 0 ? enc_sum / double(live) : 1.0), live > 0 ? dec_sum / double(live) : 1.0};
}

void resample_latents(SaeParams& p, AdamState& adam, const std::vector<int32_t>& latents, const float* inputs,
                      const std::vector<uint8_t>& dead) {
  SAE_ASSERT(int64_t(dead.size()) == p.d_sae, "dead flags for every latent");
  for (int32_t f : latents) SAE_ASSERT(f >= 0 && f < p.d_sae, "resampled latent out of range");
  std::vector<double> enc(size_t(p.d_sae)), dec(size_t(p.d_sae));
  latent_row_norms(p, enc.data(), dec.data());
  resample_rows(p, adam, latents, inputs, 0, resample_scales(enc.data(), dec.data(), dead));
}

void resample_rows(SaeParams& p, AdamState& adam, const std::vector<int32_t>& latents, const float* inputs,
                   int64_t first, ResampleScales scales) {
  const int64_t D = p.d_in, F = p.d_sae;
  const double enc_scale = scales.enc, dec_scale = scales.dec;
  const bool have_moments = int64_t(adam.m.size()) == p.size();
  for (size_t r = 0; r < latents.size(); ++r) {
    const int64_t f = latents[r] - first;
    if (f < 0 || f >= F) continue;  // another shard's
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
