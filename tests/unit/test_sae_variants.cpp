// Matryoshka, gated, transcoders (with and without the skip), crosscoders, and AuxK held
// constant: the trained gradient of every parameter block against central finite differences of
// the float64 reference loss (sae_loss_reference, dense loops written from the definitions),
// with the parts the step holds constant (AuxK's residual, gated's frozen decoder) frozen at the
// base point. Also the pieces of each variant's forward against plain formulas.
//
// Shape legend: N tokens, D d_in, O d_out, F d_sae, K k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "pipeline/io/checkpoint.hpp"
#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
#include "tests/unit/h5_test_util.hpp"
#include "tests/unit/sae_gradient_check.hpp"
#include "tests/unit/test_util.hpp"

namespace saepipe {
namespace {

using test::random_normal;
using test::random_sae_params;
using test::run_step;
using test::StepRun;
using test::check_fd;

TEST(MatryoshkaSae, MatchesFiniteDifferences) {
  const int64_t D = 12, F = 40, N = 24;
  SaeConfig cfg;
  cfg.architecture = Architecture::Matryoshka;
  cfg.k = 4;
  cfg.auxk = 0;
  cfg.prefixes = {5, 15};  // groups [0,5) [5,15) [15,40)
  const auto x = random_normal(size_t(N * D), 3);
  const SaeParams p = random_sae_params(SaeShape{D, F}, 7);
  check_fd(cfg, p, x, N, N);
  // The prefix errors are in the loss: more than the whole dictionary's error alone.
  const StepRun r = run_step(p, cfg, x, N, N, nullptr, nullptr);
  EXPECT_GT(r.sums.penalty, r.sums.sum_sq_err);
  EXPECT_EQ(r.sums.sum_active, double(N * cfg.k));  // BatchTopK's selection
}

// With a single prefix (the whole dictionary) matryoshka is batchtopk: the same gradient.
TEST(MatryoshkaSae, OnePrefixIsBatchTopK) {
  const int64_t D = 10, F = 30, N = 16;
  SaeConfig m;
  m.architecture = Architecture::Matryoshka;
  m.k = 3;
  m.auxk = 0;
  SaeConfig b = m;
  b.architecture = Architecture::BatchTopK;
  const auto x = random_normal(size_t(N * D), 13);
  const SaeParams p = random_sae_params(SaeShape{D, F}, 17);
  const StepRun rm = run_step(p, m, x, N, N, nullptr, nullptr), rb = run_step(p, b, x, N, N, nullptr, nullptr);
  EXPECT_EQ(rm.idx, rb.idx);
  EXPECT_EQ(rm.sums.penalty, 0.0);
  double gmax = 0;
  for (double g : rb.grad) gmax = std::max(gmax, std::abs(g));
  for (size_t i = 0; i < rb.grad.size(); ++i) ASSERT_NEAR(rm.grad[i], rb.grad[i], 1e-6 * gmax) << i;
}

TEST(GatedSae, MatchesFiniteDifferences) {
  const int64_t D = 12, F = 40, N = 24;
  SaeConfig cfg;
  cfg.architecture = Architecture::Gated;
  cfg.l1_coef = 0.4;
  cfg.auxk = 0;
  const auto x = random_normal(size_t(N * D), 4);
  SaeShape shape{D, F};
  shape.gated = true;
  SaeParams p = random_sae_params(shape, 8);
  for (int64_t f = 0; f < F; ++f) p.b_enc()[f] -= 0.5f;  // fewer open gates
  check_fd(cfg, p, x, N, 2 * N);
  const StepRun r = run_step(p, cfg, x, N, 2 * N, nullptr, nullptr);
  EXPECT_GT(r.sums.penalty, 0.0);
}

// z = 1[pre > 0] ReLU(exp(r) (pre - b_gate) + b_mag): the magnitude path shares W_enc.
TEST(GatedSae, CodeIsGateTimesMagnitude) {
  const int64_t D = 6, F = 9, N = 5;
  SaeShape shape{D, F};
  shape.gated = true;
  SaeParams p = random_sae_params(shape, 21);
  for (int64_t f = 1; f < F; f += 2) p.b_mag()[f] -= 1.5f;  // some open gates with a negative magnitude
  SaeConfig cfg;
  cfg.architecture = Architecture::Gated;
  const auto x = random_normal(size_t(N * D), 22);
  SaeWorkspace ws;
  sae_encode_decode(p, cfg, x.data(), N, ws);
  int opened = 0, shut_by_magnitude = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f) {
      double wx = 0;
      for (int64_t d = 0; d < D; ++d) wx += double(p.W_encT()[f * D + d]) * (double(x[n * D + d]) - p.b_dec()[d]);
      const double gate = wx + p.b_enc()[f], mag = std::exp(double(p.r_mag()[f])) * wx + p.b_mag()[f];
      const double want = gate > 0 ? std::max(mag, 0.0) : 0.0;
      float got = 0;
      for (int64_t j = 0; j < ws.width; ++j)
        if (ws.idx[n * ws.width + j] == f) got = ws.val[n * ws.width + j];
      EXPECT_NEAR(got, want, 1e-5) << n << "," << f;
      opened += gate > 0;
      shut_by_magnitude += gate > 0 && mag <= 0;
    }
  EXPECT_GT(opened, 0);
  EXPECT_GT(shut_by_magnitude, 0);  // both paths decide something here
}

TEST(Transcoder, MatchesFiniteDifferencesForEverySparsity) {
  const int64_t D = 10, O = 14, F = 36, N = 20;
  const auto x = random_normal(size_t(N * D), 5), y = random_normal(size_t(N * O), 6);
  for (bool skip : {false, true})
    for (Architecture a : {Architecture::TopK, Architecture::BatchTopK, Architecture::ReLU, Architecture::Matryoshka,
                           Architecture::Gated}) {
      SCOPED_TRACE(to_string(a) + (skip ? " skip" : ""));
      SaeShape shape{D, F, O, true, skip, a == Architecture::Gated};
      SaeParams p = random_sae_params(shape, 9);
      if (a == Architecture::ReLU || a == Architecture::Gated)
        for (int64_t f = 0; f < F; ++f) p.b_enc()[f] -= 0.6f;
      SaeConfig cfg;
      cfg.architecture = a;
      cfg.k = 3;
      cfg.auxk = 0;
      cfg.l1_coef = 0.2;
      cfg.prefixes = {6};
      check_fd(cfg, p, x, N, N, &y);
    }
}

// A transcoder's encoder reads x as it is: b_dec (the output's bias) does not move the code.
TEST(Transcoder, EncoderIgnoresTheOutputBias) {
  const int64_t D = 8, O = 8, F = 20, N = 6;
  SaeShape shape{D, F, O, true};
  SaeParams p = random_sae_params(shape, 31);
  SaeConfig cfg;
  cfg.k = 3;
  const auto x = random_normal(size_t(N * D), 32);
  SaeWorkspace a, b;
  sae_encode_decode(p, cfg, x.data(), N, a);
  const std::vector<int32_t> idx(a.idx.begin(), a.idx.begin() + N * 3);
  const std::vector<float> val(a.val.begin(), a.val.begin() + N * 3);
  for (int64_t o = 0; o < O; ++o) p.b_dec()[o] += 1.0f;
  sae_encode_decode(p, cfg, x.data(), N, b);
  EXPECT_EQ(idx, std::vector<int32_t>(b.idx.begin(), b.idx.begin() + N * 3));
  EXPECT_EQ(val, std::vector<float>(b.val.begin(), b.val.begin() + N * 3));
}

TEST(Crosscoder, MatchesFiniteDifferencesWithLayerNormL1) {
  const int64_t L = 3, w = 6, F = 30, N = 20;
  const auto x = random_normal(size_t(N * L * w), 7);
  for (Architecture a : {Architecture::ReLU, Architecture::TopK}) {
    SCOPED_TRACE(to_string(a));
    SaeShape shape{L * w, F};
    shape.layers = L;
    SaeParams p = random_sae_params(shape, 10);
    for (int64_t f = 0; f < F; ++f)  // blocks of varied norms, one nearly absent
      for (int64_t l = 0; l < L; ++l)
        for (int64_t d = 0; d < w; ++d) p.W_dec()[f * L * w + l * w + d] *= (l == 2 ? 0.1f : 0.5f + float(f % 5) / 4);
    if (a == Architecture::ReLU)
      for (int64_t f = 0; f < F; ++f) p.b_enc()[f] -= 0.6f;
    SaeConfig cfg;
    cfg.architecture = a;
    cfg.k = 4;
    cfg.auxk = 0;
    cfg.l1_coef = 0.3;
    check_fd(cfg, p, x, N, N);
  }
}

// AuxK's gradient with its residual held constant (the reference freezes r at the base point).
TEST(AuxK, MatchesFiniteDifferencesWithTheResidualHeld) {
  const int64_t D = 10, F = 30, N = 20;
  const auto x = random_normal(size_t(N * D), 8);
  std::vector<uint8_t> dead(size_t(F), 0);
  for (int64_t f = 0; f < F; f += 3) dead[f] = 1;
  for (Architecture a : {Architecture::TopK, Architecture::Matryoshka}) {
    SCOPED_TRACE(to_string(a));
    const SaeParams p = random_sae_params(SaeShape{D, F}, 11);
    SaeConfig cfg;
    cfg.architecture = a;
    cfg.k = 3;
    cfg.auxk = 4;
    cfg.auxk_coef = 0.5;
    cfg.prefixes = {8};
    check_fd(cfg, p, x, N, N, nullptr, dead.data());
    EXPECT_GT(run_step(p, cfg, x, N, N, nullptr, dead.data()).sums.aux_sq_err, 0.0);
  }
}

// Gated, a skip transcoder and a crosscoder through sae.h5 on disk: the checkpoint in raw units
// (inputs scaled by s in training) gives the code / s and the reconstruction / s of the trained
// parameters on the scaled input, and every extra block (r_mag, b_mag, W_skip, d_out, layers,
// hooks) survives the file.
TEST(VariantCheckpoint, RawUnitsThroughTheFile) {
  const int64_t D = 6, F = 14, N = 12;
  const double s = 0.41;
  struct Case {
    Architecture arch;
    SaeShape shape;
  };
  const std::vector<Case> cases = {{Architecture::Gated, {D, F, 0, false, false, true, 1}},
                                   {Architecture::ReLU, {D, F, 5, true, true, false, 1}},
                                   {Architecture::TopK, {D, F, 0, false, false, false, 3}}};
  TempDir dir;
  for (const Case& c : cases) {
    SaeParams p = random_sae_params(c.shape, 40);
    SaeConfig cfg;
    cfg.architecture = c.arch;
    cfg.k = 3;
    cfg.auxk = 0;
    const auto x = random_normal(size_t(N * D), 41, 2.0f);
    std::vector<float> xs(x.size());
    for (size_t i = 0; i < x.size(); ++i) xs[i] = float(double(x[i]) * s);
    SaeWorkspace ws;
    sae_encode_decode(p, cfg, xs.data(), N, ws);
    const int64_t W = ws.width, O = p.d_out;

    SaeCheckpoint ck = sae_to_checkpoint(p, c.arch, s, 0.0);
    ck.k = 3;
    ck.hook = "in";
    if (c.shape.transcoder) ck.target_hook = "out";
    if (c.shape.layers > 1) ck.hooks = {"a", "b", "c"};
    const std::string path = dir / (to_string(c.arch) + ".h5");
    write_sae_checkpoint(path, ck);
    const SaeCheckpoint back = read_sae_checkpoint(path);
    EXPECT_EQ(back.d_out, O);
    EXPECT_EQ(back.transcoder, c.shape.transcoder);
    EXPECT_EQ(back.layers, c.shape.layers);
    EXPECT_EQ(back.hooks, ck.hooks);
    EXPECT_EQ(back.target_hook, ck.target_hook);
    EXPECT_EQ(back.r_mag, ck.r_mag);
    EXPECT_EQ(back.b_mag, ck.b_mag);
    EXPECT_EQ(back.W_skip, ck.W_skip);
    const SaeParams raw = sae_params_from_checkpoint(back);
    ASSERT_EQ(raw.size(), p.size()) << to_string(c.arch);
    SaeWorkspace ws2;
    sae_encode_decode(raw, sae_inference_config(back), x.data(), N, ws2);
    ASSERT_EQ(ws2.width, W) << to_string(c.arch);
    int64_t active = 0;
    for (int64_t i = 0; i < N * W; ++i) {
      EXPECT_EQ(ws2.idx[i], ws.idx[i]) << to_string(c.arch);
      EXPECT_NEAR(ws2.val[i], ws.val[i] / s, 1e-4 * (1 + std::abs(ws.val[i] / s))) << to_string(c.arch);
      active += ws.idx[i] >= 0;
    }
    EXPECT_GT(active, N) << to_string(c.arch) << ": vacuous";
    for (int64_t i = 0; i < N * O; ++i)
      EXPECT_NEAR(ws2.recon[i], ws.recon[i] / s, 1e-4 * (1 + std::abs(ws.recon[i] / s))) << to_string(c.arch);
  }
}

}  // namespace
}  // namespace saepipe
