// BatchTopK, ReLU + L1 and JumpReLU: gradients against central finite differences of the
// double-precision reference loss (where the loss is smooth), the JumpReLU threshold
// pseudo-gradient against a dense test-side formula, BatchTopK's global selection split
// over "ranks", and the checkpoint fold of the input scale.
//
// Shape legend: N tokens, D d_in, F d_sae, K k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/resample.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
#include "pipeline/sae/sae_internal.hpp"
#include "pipeline/sae/schedule.hpp"
#include "tests/unit/sae_gradient_check.hpp"
#include "tests/unit/test_util.hpp"

namespace saepipe {
namespace {

using test::check_fd;
using test::random_normal;
using test::run_step;
using test::StepRun;

// Untied parameters with non-zero biases; decoder rows of varied norm (ReLU has no unit-norm
// constraint, and the L1 weighs by the norms).
SaeParams random_params(int64_t D, int64_t F, uint64_t seed, bool vary_norms) {
  SaeParams p = test::random_sae_params({D, F}, seed);
  if (vary_norms)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t d = 0; d < D; ++d) p.W_dec()[f * D + d] *= 0.5f + float(f % 7) / 6.0f;
  return p;
}

TEST(BatchTopKSae, MatchesFiniteDifferences) {
  const int64_t D = 12, F = 40, N = 24;
  SaeConfig cfg;
  cfg.architecture = Architecture::BatchTopK;
  cfg.k = 3;
  cfg.auxk = 0;
  const auto x = random_normal(size_t(N * D), 3);
  const SaeParams p = random_params(D, F, 7, false);
  check_fd(cfg, p, x, N, N);
  // Exactly N*k activations are kept (no ties among random floats), unevenly per token.
  const StepRun r = run_step(p, cfg, x, N, N);
  EXPECT_EQ(r.sums.sum_active, double(N * cfg.k));
  EXPECT_GT(r.threshold, 0.0f);
}

TEST(BatchTopKSae, GlobalSelectionSplitOverRanksMatchesWholeBatch) {
  const int64_t D = 10, F = 30, N = 21, K = 4;
  SaeConfig cfg;
  cfg.architecture = Architecture::BatchTopK;
  cfg.k = K;
  cfg.auxk = 0;
  const auto x = random_normal(size_t(N * D), 11);
  const SaeParams p = random_params(D, F, 12, false);
  const StepRun whole = run_step(p, cfg, x, N, N);
  // Three "ranks" of 7, 7 and 7 tokens: first gather every rank's candidates (what the
  // allgather does), then let each rank's kth_largest answer from the gathered set.
  const int64_t cuts[] = {0, 5, 13, N};
  std::vector<float> gathered;
  SaeConfig collect = cfg;
  collect.kth_largest = [&](std::vector<float>& c, int64_t kth) {
    gathered.insert(gathered.end(), c.begin(), c.end());
    return local_kth_largest(c, kth);
  };
  for (int r = 0; r < 3; ++r) {
    std::vector<float> xr(x.begin() + cuts[r] * D, x.begin() + cuts[r + 1] * D);
    run_step(p, collect, xr, cuts[r + 1] - cuts[r], N);
  }
  SaeConfig split = cfg;
  split.kth_largest = [&](std::vector<float>&, int64_t kth) {
    std::vector<float> all = gathered;
    return local_kth_largest(all, kth);
  };
  std::vector<double> sum(size_t(p.size()), 0.0);
  double active = 0;
  for (int r = 0; r < 3; ++r) {
    std::vector<float> xr(x.begin() + cuts[r] * D, x.begin() + cuts[r + 1] * D);
    const StepRun part = run_step(p, split, xr, cuts[r + 1] - cuts[r], N);
    EXPECT_EQ(part.threshold, whole.threshold);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += part.grad[i];
    active += part.sums.sum_active;
  }
  EXPECT_EQ(active, whole.sums.sum_active);
  double gmax = 0;
  for (double g : whole.grad) gmax = std::max(gmax, std::abs(g));
  for (size_t i = 0; i < sum.size(); ++i) EXPECT_NEAR(sum[i], whole.grad[i], 1e-6 * gmax) << "param " << i;
}

TEST(ReluSae, MatchesFiniteDifferencesWithNormWeightedL1) {
  const int64_t D = 12, F = 40, N = 24;
  SaeConfig cfg;
  cfg.architecture = Architecture::ReLU;
  cfg.l1_coef = 0.3;
  cfg.auxk = 0;
  const auto x = random_normal(size_t(N * D), 4);
  SaeParams p = random_params(D, F, 8, true);
  for (int64_t f = 0; f < F; ++f) p.b_enc()[f] -= 0.6f;  // keep the code sparse-ish
  check_fd(cfg, p, x, N, 2 * N);
  const StepRun r = run_step(p, cfg, x, N, 2 * N);
  EXPECT_GT(r.sums.penalty, 0.0);
}

TEST(ReluSae, DecoderIsNotRenormalised) {
  SaeParams p = random_params(6, 10, 3, true);
  const float before = p.W_dec()[0];
  std::vector<float> grad(size_t(p.size()), 0.0f);
  AdamState st;
  sae_apply_gradient(p, grad, st, AdamConfig{}, unit_norm_decoder(Architecture::ReLU));
  EXPECT_EQ(p.W_dec()[0], before);  // zero gradient, no renormalisation
}

// train.threshold_lr_scale: one Adam step from zero moments moves each parameter by
// lr_i * g / (|g| + eps) (m_hat = g, v_hat = g^2), lr_i = lr * scale on log_threshold and lr on
// everything else, including the gated and skip parts after it in the layout.
TEST(JumpReluSae, ThresholdLearnsAtItsOwnRate) {
  SaeShape shape{5, 7, 5, true, true, true, 1};  // gated and skip: parameters on both sides of log_threshold
  SaeParams p0(shape);
  std::mt19937_64 rng(12);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& w : p0.data) w = nd(rng);
  std::vector<float> g(p0.data.size());
  for (float& x : g) x = 0.01f * nd(rng);
  AdamConfig cfg;
  cfg.lr = 1e-3f;
  cfg.threshold_lr_scale = 0.1f;
  SaeParams p = p0;
  std::vector<float> grad = g;
  AdamState st;
  sae_apply_gradient(p, grad, st, cfg, false);
  const int64_t t0 = p.off_log_threshold(), t1 = t0 + p.d_sae;
  ASSERT_LT(t1, p.size());
  for (int64_t i = 0; i < p.size(); ++i) {
    const double lr = (i >= t0 && i < t1) ? 1e-4 : 1e-3;
    const double want = double(p0.data[size_t(i)]) - lr * g[size_t(i)] / (std::abs(g[size_t(i)]) + cfg.eps);
    EXPECT_NEAR(p.data[size_t(i)], want, 1e-2 * lr) << "parameter " << i;
  }
}

// The JumpReLU threshold pseudo-gradient written out densely in float64, independently of
// jumprelu_backward: for every (n, f) in the kernel window,
//   d/dlog(theta_f) += theta_f * ( <W_dec,f, 2/B (x_hat_n - x_n)> * (-theta_f/eps) - l0/(B eps) ).
std::vector<double> jumprelu_threshold_grad(const SaeParams& p, const SaeConfig& cfg, const std::vector<float>& x,
                                            int64_t N, int64_t B) {
  const int64_t D = p.d_in, F = p.d_sae;
  std::vector<double> out(size_t(F), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> pre(static_cast<size_t>(F)), xh(static_cast<size_t>(D));
    for (int64_t f = 0; f < F; ++f) {
      double s = p.b_enc()[f];
      for (int64_t d = 0; d < D; ++d) s += double(p.W_encT()[f * D + d]) * (double(x[n * D + d]) - p.b_dec()[d]);
      pre[f] = s;
    }
    for (int64_t d = 0; d < D; ++d) xh[d] = p.b_dec()[d];
    for (int64_t f = 0; f < F; ++f) {
      const double th = std::exp(double(p.log_threshold()[f]));
      if (pre[f] > th)
        for (int64_t d = 0; d < D; ++d) xh[d] += pre[f] * p.W_dec()[f * D + d];
    }
    for (int64_t f = 0; f < F; ++f) {
      const double th = std::exp(double(p.log_threshold()[f]));
      if (std::abs(pre[f] - th) >= 0.5 * cfg.bandwidth) continue;
      double dz = 0;
      for (int64_t d = 0; d < D; ++d) dz += double(p.W_dec()[f * D + d]) * 2.0 / double(B) * (xh[d] - x[n * D + d]);
      out[f] += th * (dz * (-th / cfg.bandwidth) - cfg.l0_coef / (double(B) * cfg.bandwidth));
    }
  }
  return out;
}

TEST(JumpReluSae, MatchesFiniteDifferencesAndThresholdPseudoGradient) {
  const int64_t D = 12, F = 40, N = 32;
  SaeConfig cfg;
  cfg.architecture = Architecture::JumpReLU;
  cfg.l0_coef = 0.05;
  cfg.bandwidth = 0.2;  // wide, so that many (token, latent) pairs fall in the window
  cfg.auxk = 0;
  const auto x = random_normal(size_t(N * D), 5);
  SaeParams p = random_params(D, F, 9, false);
  for (int64_t f = 0; f < F; ++f) p.log_threshold()[f] = std::log(0.3f + 0.02f * float(f % 10));
  check_fd(cfg, p, x, N, N);

  const StepRun r = run_step(p, cfg, x, N, N);
  const auto ref = jumprelu_threshold_grad(p, cfg, x, N, N);
  int nonzero = 0;
  double gmax = 0;
  for (double g : ref) gmax = std::max(gmax, std::abs(g));
  for (int64_t f = 0; f < F; ++f) {
    const double got = r.grad[size_t(p.off_log_threshold() + f)];
    EXPECT_NEAR(got, ref[f], 1e-5 * gmax + 1e-6 * std::abs(ref[f])) << "latent " << f;
    nonzero += ref[f] != 0.0;
  }
  EXPECT_GT(nonzero, F / 2) << "few latents near their thresholds: the check is weak";
  // Penalty counts active latents.
  EXPECT_NEAR(r.sums.penalty, cfg.l0_coef * r.sums.sum_active, 1e-12);
}

TEST(JumpReluSae, L0PenaltyAloneRaisesThresholds) {
  // With a perfect reconstruction impossible to improve (x = b_dec, W_dec ~ 0) only the L0
  // term acts: its pseudo-gradient pushes every threshold with activity nearby upwards.
  const int64_t D = 4, F = 8, N = 64;
  SaeConfig cfg;
  cfg.architecture = Architecture::JumpReLU;
  cfg.l0_coef = 1.0;
  cfg.bandwidth = 1.0;
  cfg.auxk = 0;
  SaeParams p = random_params(D, F, 2, false);
  std::fill(p.W_dec(), p.W_dec() + F * D, 0.0f);
  std::fill(p.log_threshold(), p.log_threshold() + F, std::log(0.2f));
  const auto x = random_normal(size_t(N * D), 6, 0.3f);
  const StepRun r = run_step(p, cfg, x, N, N);
  for (int64_t f = 0; f < F; ++f) EXPECT_LE(r.grad[size_t(p.off_log_threshold() + f)], 0.0);  // descent raises
}

TEST(SaeCheckpointFold, RawUnitsGiveTheSameCodeAndReconstruction) {
  const int64_t D = 8, F = 20, N = 16;
  const double s = 0.37;  // x' = s x
  const auto x = random_normal(size_t(N * D), 21, 3.0f);
  std::vector<float> xs(x.size());
  for (size_t i = 0; i < x.size(); ++i) xs[i] = float(double(x[i]) * s);
  for (Architecture a : {Architecture::TopK, Architecture::ReLU, Architecture::JumpReLU, Architecture::BatchTopK}) {
    SaeParams p = random_params(D, F, 30, false);
    for (int64_t f = 0; f < F; ++f) p.log_threshold()[f] = std::log(0.1f);
    SaeConfig train_cfg;
    train_cfg.architecture = a == Architecture::BatchTopK ? Architecture::JumpReLU : a;  // inference rule
    train_cfg.k = 3;
    SaeWorkspace ws;
    sae_encode_decode(p, train_cfg, xs.data(), N, ws);
    const std::vector<float> recon_scaled(ws.recon.begin(), ws.recon.begin() + N * D);
    const int64_t w = ws.width;
    const std::vector<int32_t> idx(ws.idx.begin(), ws.idx.begin() + N * w);
    const std::vector<float> val(ws.val.begin(), ws.val.begin() + N * w);

    SaeCheckpoint c = sae_to_checkpoint(p, a, s, 0.1);
    c.k = 3;
    const SaeParams raw = sae_params_from_checkpoint(c);
    const SaeConfig cfg = sae_inference_config(c);
    SaeWorkspace ws2;
    sae_encode_decode(raw, cfg, x.data(), N, ws2);
    ASSERT_EQ(ws2.width, w) << to_string(a);
    EXPECT_EQ(std::vector<int32_t>(ws2.idx.begin(), ws2.idx.begin() + N * w), idx) << to_string(a);
    for (int64_t i = 0; i < N * w; ++i) EXPECT_NEAR(ws2.val[i], val[i] / s, 1e-4 * (1 + std::abs(val[i] / s)));
    for (int64_t i = 0; i < N * D; ++i)
      EXPECT_NEAR(ws2.recon[i], recon_scaled[i] / s, 1e-4 * (1 + std::abs(recon_scaled[i] / s))) << to_string(a);
  }
}

TEST(Schedule, WarmupFlatDecay) {
  EXPECT_DOUBLE_EQ(lr_factor(0, 100, 10, 0.2), 0.1);
  EXPECT_DOUBLE_EQ(lr_factor(9, 100, 10, 0.2), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(50, 100, 10, 0.2), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(80, 100, 10, 0.2), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(90, 100, 10, 0.2), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(99, 100, 10, 0.2), 0.05);
  EXPECT_DOUBLE_EQ(lr_factor(5, 100, 0, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(l1_factor(0, 100, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(l1_factor(50, 100, 0.1), 1.0);
}

}  // namespace
}  // namespace saepipe

namespace saepipe {
namespace {

TEST(Resample, DeadLatentsPointAtTheirInputsWithFreshMoments) {
  const int64_t D = 4, F = 6;
  SaeParams p(D, F);
  init_tied(p, 4);
  AdamState adam;
  adam.m.assign(size_t(p.size()), 1.0f);
  adam.v.assign(size_t(p.size()), 1.0f);
  std::vector<uint8_t> dead = {0, 1, 0, 0, 1, 0};
  const std::vector<int32_t> latents = {1, 4};
  const std::vector<float> inputs = {3, 0, 4, 0, /* */ 0, 0, 0, 0};  // the second is zero: left alone
  const SaeParams before = p;
  resample_latents(p, adam, latents, inputs.data(), dead);
  // Latent 1: unit direction (0.6, 0, 0.8, 0); encoder 0.2 x mean live encoder norm (= 1 here).
  EXPECT_NEAR(p.W_dec()[1 * D + 0], 0.6f, 1e-6);
  EXPECT_NEAR(p.W_dec()[1 * D + 2], 0.8f, 1e-6);
  EXPECT_NEAR(p.W_encT()[1 * D + 2], 0.2f * 0.8f, 1e-6);
  EXPECT_EQ(p.b_enc()[1], 0.0f);
  EXPECT_EQ(adam.m[size_t(p.off_W_dec() + 1 * D)], 0.0f);
  EXPECT_EQ(adam.v[size_t(p.off_b_enc() + 1)], 0.0f);
  EXPECT_EQ(adam.m[size_t(p.off_W_dec() + 0 * D)], 1.0f);  // live latent untouched
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(p.W_dec()[4 * D + d], before.W_dec()[4 * D + d]);
}

TEST(Resample, SamplingFollowsTheWeights) {
  const std::vector<double> prefix = {0.0, 1.0, 1.0, 4.0};  // weights 0, 1, 0, 3
  EXPECT_EQ(sample_proportional(prefix, 0.0), 1);
  EXPECT_EQ(sample_proportional(prefix, 0.2), 1);
  EXPECT_EQ(sample_proportional(prefix, 0.26), 3);
  EXPECT_EQ(sample_proportional(prefix, 0.999), 3);
}

// The step's laned float64 row sums (sae_internal.hpp) against plain long double sums, on a
// width that is not a multiple of the 8 lanes; the error's gradient element by element.
TEST(SaeRowSums, LanedSumsMatchPlainSums) {
  const int64_t N = 5, D = 771;
  const auto y = random_normal(size_t(N * D), 91), recon = random_normal(size_t(N * D), 92);
  std::vector<double> sum_y(static_cast<size_t>(D), 1.0);  // added onto
  const double x2 = sae_detail::add_target_sums(y.data(), N, D, sum_y.data());
  long double want_x2 = 0;
  for (int64_t d = 0; d < D; ++d) {
    long double col = 0;
    for (int64_t n = 0; n < N; ++n) col += y[n * D + d];
    EXPECT_NEAR(sum_y[d], 1.0 + double(col), 1e-12) << d;
  }
  for (float v : y) want_x2 += (long double)v * v;
  EXPECT_NEAR(x2, double(want_x2), 1e-12 * double(want_x2));
  std::vector<float> g(static_cast<size_t>(D));
  const double scale = 2.0 / 4096;
  long double want_e2 = 0;
  const double e2 = sae_detail::row_scaled_error(recon.data(), y.data(), D, scale, g.data());
  for (int64_t d = 0; d < D; ++d) {
    const double e = double(recon[d]) - double(y[d]);
    want_e2 += (long double)e * e;
    EXPECT_EQ(g[d], float(scale * e)) << d;
  }
  EXPECT_NEAR(e2, double(want_e2), 1e-12 * double(want_e2));
}

}  // namespace
}  // namespace saepipe
