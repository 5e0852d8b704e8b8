#include "pipeline/sae/sae_checkpoint.hpp"

#include <cmath>

namespace saepipe {

SaeCheckpoint sae_to_checkpoint(const SaeParams& p, Architecture a, double input_scale, double threshold_scaled) {
  SaeCheckpoint c;
  const int64_t D = p.d_in, F = p.d_sae, O = p.d_out;
  const double inv = 1.0 / input_scale;
  c.d_in = D;
  c.d_sae = F;
  c.d_out = O;
  c.transcoder = p.transcoder;
  c.layers = p.layers;
  c.W_enc.resize(size_t(D * F));
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) c.W_enc[d * F + f] = p.W_encT()[f * D + d];
  c.b_enc.resize(size_t(F));
  for (int64_t f = 0; f < F; ++f) c.b_enc[f] = float(double(p.b_enc()[f]) * inv);
  c.W_dec.assign(p.W_dec(), p.W_dec() + F * O);
  c.b_dec.resize(size_t(O));
  for (int64_t d = 0; d < O; ++d) c.b_dec[d] = float(double(p.b_dec()[d]) * inv);
  if (p.gated) {
    c.r_mag.assign(p.r_mag(), p.r_mag() + F);
    c.b_mag.resize(size_t(F));
    for (int64_t f = 0; f < F; ++f) c.b_mag[f] = float(double(p.b_mag()[f]) * inv);
  }
  if (p.skip) c.W_skip.assign(p.W_skip(), p.W_skip() + O * D);
  c.threshold.assign(size_t(F), 0.0f);
  if (a == Architecture::JumpReLU)
    for (int64_t f = 0; f < F; ++f) c.threshold[f] = float(std::exp(double(p.log_threshold()[f])) * inv);
  if (batch_selection(a)) c.threshold.assign(size_t(F), float(threshold_scaled * inv));
  c.architecture = to_string(a);
  return c;
}

SaeParams sae_params_from_checkpoint(const SaeCheckpoint& c) {
  SaeParams p(SaeShape{c.d_in, c.d_sae, c.d_out, c.transcoder, !c.W_skip.empty(), c.architecture == "gated", c.layers});
  const int64_t D = c.d_in, F = c.d_sae;
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) p.W_encT()[f * D + d] = c.W_enc[d * F + f];
  std::copy(c.b_enc.begin(), c.b_enc.end(), p.b_enc());
  std::copy(c.W_dec.begin(), c.W_dec.end(), p.W_dec());
  std::copy(c.b_dec.begin(), c.b_dec.end(), p.b_dec());
  for (int64_t f = 0; f < F; ++f)
    p.log_threshold()[f] = f < int64_t(c.threshold.size()) ? std::log(c.threshold[f]) : -INFINITY;
  if (p.gated) {
    std::copy(c.r_mag.begin(), c.r_mag.end(), p.r_mag());
    std::copy(c.b_mag.begin(), c.b_mag.end(), p.b_mag());
  }
  if (p.skip) std::copy(c.W_skip.begin(), c.W_skip.end(), p.W_skip());
  return p;
}

SaeConfig sae_inference_config(const SaeCheckpoint& c) {
  SaeConfig cfg;
  const Architecture a = parse_architecture(c.architecture);
  cfg.architecture = batch_selection(a) ? Architecture::JumpReLU : a;
  cfg.k = c.k;
  cfg.auxk = 0;
  return cfg;
}

}  // namespace saepipe
