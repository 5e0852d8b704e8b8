// The finite-difference check of the SAE tests: a step's analytic gradient, block by block,
// against central differences of the float64 reference loss (sae_loss_reference).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "pipeline/sae/sae.hpp"

namespace saepipe::test {

struct StepRun {
  std::vector<double> grad;
  std::vector<int32_t> idx, gate_idx, aux_idx;  // the selection (gated's gate set, AuxK's)
  SaeStepSums sums;
  float threshold = 0;  // batchtopk's batch threshold
};

// One step's gradient and selections on N rows of a global batch of B (y: a transcoder's target;
// dead: AuxK's dead latents).
inline StepRun run_step(const SaeParams& p, const SaeConfig& cfg, const std::vector<float>& x, int64_t N, int64_t B,
                        const std::vector<float>* y = nullptr, const uint8_t* dead = nullptr) {
  StepRun r;
  SaeWorkspace ws;
  r.grad.assign(size_t(p.size()), 0.0);
  r.sums = sae_forward_backward(p, cfg, x.data(), N, B, dead, r.grad.data(), nullptr, ws, 0, 0, y ? y->data() : nullptr);
  r.idx.assign(ws.idx.begin(), ws.idx.begin() + N * ws.width);
  r.threshold = ws.batch_threshold;
  if (p.gated) r.gate_idx.assign(ws.gate_idx.begin(), ws.gate_idx.begin() + N * ws.gate_width);
  if (dead && cfg.auxk > 0) {
    int64_t n_dead = 0;
    for (int64_t f = 0; f < p.d_sae; ++f) n_dead += dead[f] != 0;
    r.aux_idx.assign(ws.aux_idx.begin(), ws.aux_idx.begin() + N * std::min(cfg.auxk, n_dead));
  }
  return r;
}

struct Block {
  std::string name;
  int64_t off, rows, cols;
};

inline std::vector<Block> blocks_of(const SaeParams& p) {
  const int64_t D = p.d_in, O = p.d_out, F = p.d_sae;
  std::vector<Block> b = {{"W_encT", p.off_W_encT(), F, D}, {"b_enc", p.off_b_enc(), F, 1},
                          {"W_dec", p.off_W_dec(), F, O},   {"b_dec", p.off_b_dec(), 1, O}};
  if (p.gated) b.push_back({"r_mag", p.off_r_mag(), F, 1}), b.push_back({"b_mag", p.off_b_mag(), F, 1});
  if (p.skip) b.push_back({"W_skip", p.off_W_skip(), 1, O * D});
  return b;
}

// Moves sampled parameters of each block by +-h with the frozen parts held at the base point;
// where the selection does not change, the loss is smooth and the central difference is exact
// up to rounding. Latent rows are sampled among the latents the batch uses.
inline void check_fd(const SaeConfig& cfg, const SaeParams& p, const std::vector<float>& x, int64_t N, int64_t B,
                     const std::vector<float>* y = nullptr, const uint8_t* dead = nullptr) {
  const StepRun base = run_step(p, cfg, x, N, B, y, dead);
  std::vector<int64_t> live;
  for (int32_t f : base.idx)
    if (f >= 0) live.push_back(f);
  for (int32_t f : base.aux_idx)  // AuxK's dead latents too
    if (f >= 0) live.push_back(f);
  ASSERT_FALSE(live.empty());
  std::mt19937_64 rng(5);
  const float* yp = y ? y->data() : nullptr;
  for (const Block& b : blocks_of(p)) {
    int checked = 0;
    double gmax = 0;
    std::vector<std::pair<double, double>> pairs;
    for (int t = 0; t < 30; ++t) {
      const int64_t row = b.rows == 1 ? 0 : live[rng() % live.size()];
      const int64_t i = b.off + row * b.cols + int64_t(rng() % uint64_t(b.cols));
      SaeParams plus = p, minus = p;
      plus.data[i] += 1.0f / 8192;
      minus.data[i] -= 1.0f / 8192;
      const StepRun rp = run_step(plus, cfg, x, N, B, y, dead), rm = run_step(minus, cfg, x, N, B, y, dead);
      if (rp.idx != base.idx || rm.idx != base.idx || rp.gate_idx != base.gate_idx || rm.gate_idx != base.gate_idx ||
          rp.aux_idx != base.aux_idx || rm.aux_idx != base.aux_idx)
        continue;
      const double fd = (sae_loss_reference(plus, cfg, x.data(), N, B, dead, yp, &p) -
                         sae_loss_reference(minus, cfg, x.data(), N, B, dead, yp, &p)) /
                        (double(plus.data[i]) - double(minus.data[i]));
      pairs.push_back({base.grad[i], fd});
      gmax = std::max(gmax, std::abs(fd));
      ++checked;
    }
    EXPECT_GE(checked, 15) << b.name << ": too many samples near a selection change";
    EXPECT_GT(gmax, 1e-3) << b.name << ": vacuous check";
    for (auto [a, fd] : pairs)
      EXPECT_LE(std::abs(a - fd), 2e-4 * std::abs(fd) + 5e-5 * gmax) << b.name << ": analytic " << a << ", fd " << fd;
  }
  // The loss from the step's sums agrees with the reference at the base point.
  const double loss = (base.sums.sum_sq_err + base.sums.penalty) / double(B) + cfg.auxk_coef * base.sums.aux_sq_err / double(B);
  EXPECT_NEAR(loss, sae_loss_reference(p, cfg, x.data(), N, B, dead, yp, &p), 1e-5 * loss);
}

}  // namespace saepipe::test
