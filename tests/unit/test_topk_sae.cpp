// TopK SAE: gradients against central finite differences of the double-precision reference
// loss, batch splitting, fire counts, geometric median, tied init and a tiny training run.
//
// Shape legend: N tokens, D d_in, F d_sae, K k, A auxk.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "tests/unit/test_util.hpp"
#include "pipeline/sae/topk_sae.hpp"

namespace saepipe {
namespace {

using test::random_normal;
using test::random_sae_params;
using test::ThreadCount;

// Test-side double-precision code for the pieces sae_loss_reference does not expose:
// per-token selections and the AuxK term with the residual r held fixed.
struct DenseForward {
  std::vector<std::vector<int64_t>> top;      // [N][K] main selection (pre > 0 only)
  std::vector<std::vector<int64_t>> aux_top;  // [N][<=A] aux selection (pre > 0 only)
  std::vector<double> x_hat;                  // [N,D]
  std::vector<double> pre;                    // [N,F]
};

DenseForward dense_forward(const SaeParams& p, const TopKConfig& cfg, const float* x,
                           int64_t N, const uint8_t* dead) {
  const int64_t D = p.d_in, F = p.d_sae;
  DenseForward out;
  out.x_hat.assign(size_t(N * D), 0.0);
  out.pre.assign(size_t(N * F), 0.0);
  out.top.resize(size_t(N));
  out.aux_top.resize(size_t(N));
  for (int64_t n = 0; n < N; ++n) {
    double* pre = out.pre.data() + n * F;
    for (int64_t f = 0; f < F; ++f) {
      double s = p.b_enc()[f];
      for (int64_t d = 0; d < D; ++d)
        s += double(p.W_encT()[f * D + d]) * (double(x[n * D + d]) - p.b_dec()[d]);
      pre[f] = s;
    }
    auto pick = [&](std::vector<int64_t> cols, int64_t k) {
      std::stable_sort(cols.begin(), cols.end(),
                       [&](int64_t a, int64_t b) { return pre[a] > pre[b]; });
      cols.resize(size_t(std::min<int64_t>(k, int64_t(cols.size()))));
      std::erase_if(cols, [&](int64_t f) { return !(pre[f] > 0.0); });
      return cols;
    };
    std::vector<int64_t> all(static_cast<size_t>(F)), dead_cols;
    std::iota(all.begin(), all.end(), 0);
    out.top[n] = pick(all, cfg.k);
    for (int64_t d = 0; d < D; ++d) out.x_hat[n * D + d] = p.b_dec()[d];
    for (int64_t f : out.top[n])
      for (int64_t d = 0; d < D; ++d)
        out.x_hat[n * D + d] += pre[f] * double(p.W_dec()[f * D + d]);
    if (dead && cfg.auxk > 0) {
      for (int64_t f = 0; f < F; ++f)
        if (dead[f]) dead_cols.push_back(f);
      out.aux_top[n] = pick(dead_cols, cfg.auxk);
    }
  }
  return out;
}

// (1/B) sum_n ||e_hat_n - r_n||^2 with r given (held fixed), e_hat from the current params.
double aux_term_fixed_r(const SaeParams& p, const TopKConfig& cfg, const float* x, int64_t N,
                        int64_t B, const uint8_t* dead, const std::vector<double>& r) {
  const auto fw = dense_forward(p, cfg, x, N, dead);
  const int64_t D = p.d_in, F = p.d_sae;
  double s = 0.0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      double e = 0.0;
      for (int64_t f : fw.aux_top[n]) e += fw.pre[n * F + f] * p.W_dec()[f * D + d];
      const double diff = e - r[n * D + d];
      s += diff * diff;
    }
  return s / double(B);
}

std::vector<double> residual(const SaeParams& p, const TopKConfig& cfg, const float* x,
                             int64_t N) {
  const auto fw = dense_forward(p, cfg, x, N, nullptr);
  std::vector<double> r(fw.x_hat.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = double(x[i]) - fw.x_hat[i];
  return r;
}

struct GradRun {
  std::vector<double> grad;
  std::vector<int64_t> fire;
  SaeStepSums sums;
  std::vector<int32_t> idx, aux_idx;
};

GradRun run_grad(const SaeParams& p, const TopKConfig& cfg, const float* x, int64_t N,
                 int64_t B, const uint8_t* dead) {
  GradRun g;
  SaeWorkspace ws;
  g.grad.assign(size_t(p.size()), 0.0);
  g.fire.assign(size_t(p.d_sae), 0);
  g.sums = sae_forward_backward(p, cfg, x, N, B, dead, g.grad.data(), g.fire.data(), ws);
  g.idx.assign(ws.idx.begin(), ws.idx.begin() + N * cfg.k);
  int64_t n_dead = 0;
  for (int64_t f = 0; dead && f < p.d_sae; ++f) n_dead += dead[f] != 0;
  const int64_t A = (cfg.auxk > 0 && dead) ? std::min(cfg.auxk, n_dead) : 0;
  g.aux_idx.assign(ws.aux_idx.begin(), ws.aux_idx.begin() + N * A);
  return g;
}

// The gradient check. Each sampled parameter is moved by +-h; if either move changes a
// selection (main or aux, including a value crossing 0) the loss is not smooth there and the
// sample is skipped. With fixed selections the loss is quadratic in any single parameter, so
// the central difference is exact up to rounding; the tolerance covers the float forward.
struct FdSetup {
  int64_t D = 12, F = 40, N = 24, B = 48;  // B > N: gradients scale with the global batch
  TopKConfig cfg;
  std::vector<float> x;
  std::vector<uint8_t> dead;
};

void check_gradients(const FdSetup& s, bool with_aux) {
  SaeParams p = random_sae_params({s.D, s.F}, 7);
  const uint8_t* dead = with_aux ? s.dead.data() : nullptr;
  const auto base = run_grad(p, s.cfg, s.x.data(), s.N, s.B, dead);
  if (with_aux) {
    ASSERT_GT(base.sums.aux_sq_err, 0.0);
  }

  TopKConfig main_cfg = s.cfg;
  main_cfg.auxk = 0;
  // Residual at the base point, held fixed in the aux term (as the training gradient does).
  const auto r0 = residual(p, s.cfg, s.x.data(), s.N);
  // The test-side aux term agrees with the library's reference loss at the base point.
  if (with_aux) {
    const double ref = sae_loss_reference(p, s.cfg, s.x.data(), s.N, s.B, dead);
    const double mine = sae_loss_reference(p, main_cfg, s.x.data(), s.N, s.B, nullptr) +
                        s.cfg.auxk_coef * aux_term_fixed_r(p, s.cfg, s.x.data(), s.N, s.B, dead, r0);
    ASSERT_NEAR(mine, ref, 1e-12 * std::abs(ref));
  }
  auto loss = [&](const SaeParams& q) {
    double l = sae_loss_reference(q, main_cfg, s.x.data(), s.N, s.B, nullptr);
    if (with_aux) l += s.cfg.auxk_coef * aux_term_fixed_r(q, s.cfg, s.x.data(), s.N, s.B, dead, r0);
    return l;
  };

  // Sample parameters of every block, favouring latents that are selected somewhere.
  std::mt19937_64 rng(99);
  std::vector<int64_t> live;
  for (int64_t f = 0; f < s.F; ++f) {
    bool used = base.fire[f] > 0;
    for (int32_t a : base.aux_idx) used = used || a == f;
    if (used) live.push_back(f);
  }
  ASSERT_FALSE(live.empty());
  struct Block { const char* name; int64_t off, rows, cols; };
  const Block blocks[] = {{"W_encT", p.off_W_encT(), s.F, s.D},
                          {"b_enc", p.off_b_enc(), s.F, 1},
                          {"W_dec", p.off_W_dec(), s.F, s.D},
                          {"b_dec", p.off_b_dec(), 1, s.D}};
  for (const Block& b : blocks) {
    int checked = 0, skipped = 0;
    double gmax = 0.0;
    std::vector<std::pair<double, double>> pairs;  // (analytic, finite difference)
    std::vector<int64_t> where;
    for (int t = 0; t < 30; ++t) {
      const int64_t row = b.rows == 1 ? 0
                          : (t % 3 == 2) ? int64_t(rng() % uint64_t(b.rows))
                                         : live[rng() % live.size()];
      const int64_t i = b.off + row * b.cols + int64_t(rng() % uint64_t(b.cols));
      const float orig = p.data[i];
      const float h = 1.0f / 16384;
      SaeParams plus = p, minus = p;
      plus.data[i] = orig + h;
      minus.data[i] = orig - h;
      const auto gp = run_grad(plus, s.cfg, s.x.data(), s.N, s.B, dead);
      const auto gm = run_grad(minus, s.cfg, s.x.data(), s.N, s.B, dead);
      if (gp.idx != base.idx || gm.idx != base.idx || gp.aux_idx != base.aux_idx ||
          gm.aux_idx != base.aux_idx) {
        ++skipped;
        continue;
      }
      const double step = double(plus.data[i]) - double(minus.data[i]);
      const double fd = (loss(plus) - loss(minus)) / step;
      pairs.push_back({base.grad[i], fd});
      where.push_back(i - b.off);
      gmax = std::max(gmax, std::abs(fd));
      ++checked;
    }
    EXPECT_GE(checked, 20) << b.name << ": too many samples near a selection change ("
                           << skipped << " skipped)";
    EXPECT_GT(gmax, 1e-3) << b.name << ": sampled gradients are all ~0, the check is vacuous";
    for (size_t k = 0; k < pairs.size(); ++k)
      EXPECT_LE(std::abs(pairs[k].first - pairs[k].second), 1e-4 * std::abs(pairs[k].second) + 2e-5 * gmax)
          << b.name << "[" << where[k] << "]: analytic " << pairs[k].first << ", finite difference "
          << pairs[k].second << (with_aux ? " (AuxK on)" : "");
  }
}

FdSetup fd_setup() {
  FdSetup s;
  s.cfg.k = 4;
  s.cfg.auxk = 5;
  s.cfg.auxk_coef = 0.5;  // larger than 1/32 so the aux part is not hidden by the tolerance
  s.x = random_normal(size_t(s.N * s.D), 3);
  s.dead.assign(size_t(s.F), 0);
  for (int64_t f = 0; f < s.F; f += 3) s.dead[f] = 1;
  return s;
}

TEST(TopKSaeGrad, MatchesFiniteDifferencesWithoutAuxK) { check_gradients(fd_setup(), false); }

TEST(TopKSaeGrad, MatchesFiniteDifferencesWithAuxK) { check_gradients(fd_setup(), true); }

// For parameters that do not move x_hat (dead latents the main path never selects), the
// detached residual makes no difference: the gradient is the plain derivative of
// sae_loss_reference itself.
TEST(TopKSaeGrad, DeadLatentGradientIsDerivativeOfReferenceLoss) {
  const FdSetup s = fd_setup();
  SaeParams p = random_sae_params({s.D, s.F}, 7);
  // Weak but positive dead latents: they lose the main top-k yet win the aux top-k.
  for (int64_t f = 0; f < s.F; ++f) {
    if (!s.dead[f]) continue;
    for (int64_t d = 0; d < s.D; ++d) p.W_encT()[f * s.D + d] *= 0.2f;
    p.b_enc()[f] = 0.3f;
  }
  const auto base = run_grad(p, s.cfg, s.x.data(), s.N, s.B, s.dead.data());
  int checked = 0;
  for (int64_t f = 0; f < s.F; ++f) {
    bool in_aux = false;
    for (int32_t a : base.aux_idx) in_aux = in_aux || a == f;
    if (!s.dead[f] || base.fire[f] > 0 || !in_aux) continue;
    for (int64_t i : {p.off_W_encT() + f * s.D + (f % s.D), p.off_b_enc() + f,
                      p.off_W_dec() + f * s.D + ((f + 5) % s.D)}) {
      SaeParams plus = p, minus = p;
      plus.data[i] += 1.0f / 16384;
      minus.data[i] -= 1.0f / 16384;
      const auto gp = run_grad(plus, s.cfg, s.x.data(), s.N, s.B, s.dead.data());
      const auto gm = run_grad(minus, s.cfg, s.x.data(), s.N, s.B, s.dead.data());
      if (gp.idx != base.idx || gm.idx != base.idx || gp.aux_idx != base.aux_idx ||
          gm.aux_idx != base.aux_idx)
        continue;
      const double fd = (sae_loss_reference(plus, s.cfg, s.x.data(), s.N, s.B, s.dead.data()) -
                         sae_loss_reference(minus, s.cfg, s.x.data(), s.N, s.B, s.dead.data())) /
                        (double(plus.data[i]) - double(minus.data[i]));
      EXPECT_NEAR(base.grad[i], fd, 1e-4 * std::abs(fd) + 1e-6) << "param " << i;
      EXPECT_NE(fd, 0.0);
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
}

TEST(TopKSae, LossFromSumsMatchesReference) {
  const FdSetup s = fd_setup();
  SaeParams p = random_sae_params({s.D, s.F}, 8);
  for (bool aux : {false, true}) {
    const uint8_t* dead = aux ? s.dead.data() : nullptr;
    const auto g = run_grad(p, s.cfg, s.x.data(), s.N, s.B, dead);
    const double loss = g.sums.sum_sq_err / double(s.B) + s.cfg.auxk_coef * g.sums.aux_sq_err / double(s.B);
    const double ref = sae_loss_reference(p, s.cfg, s.x.data(), s.N, s.B, dead);
    EXPECT_NEAR(loss, ref, 1e-5 * ref) << "aux " << aux;
    EXPECT_EQ(g.sums.n_tokens, s.N);
    EXPECT_EQ(aux, g.sums.aux_sq_err > 0.0);
  }
}

TEST(TopKSae, FireCountAndActiveCountMatchDenseSelection) {
  const FdSetup s = fd_setup();
  SaeParams p = random_sae_params({s.D, s.F}, 9);
  for (int64_t f = 0; f < s.F; ++f) p.b_enc()[f] -= 2.0f;  // some top-k values end up <= 0
  const auto g = run_grad(p, s.cfg, s.x.data(), s.N, s.B, s.dead.data());
  const auto fw = dense_forward(p, s.cfg, s.x.data(), s.N, nullptr);
  std::vector<int64_t> want(static_cast<size_t>(s.F), 0);
  double active = 0;
  for (const auto& row : fw.top)
    for (int64_t f : row) {
      ++want[f];
      ++active;
    }
  EXPECT_EQ(g.fire, want);
  EXPECT_EQ(g.sums.sum_active, active);
  // Some slots are inactive (pre <= 0) in this setup, so the ReLU part is exercised.
  EXPECT_LT(active, double(s.N * s.cfg.k));
  EXPECT_GT(active, 0.0);
}

// Runs a batch of 64 whole and as two calls of 32 with the same global batch; returns the
// largest gradient difference relative to the largest gradient entry.
double split_batch_difference(const SaeParams& p, const TopKConfig& cfg,
                              const std::vector<float>& x, const std::vector<uint8_t>& dead) {
  const int64_t D = p.d_in, N = 64;
  const auto whole = run_grad(p, cfg, x.data(), N, N, dead.data());
  std::vector<double> grad(static_cast<size_t>(p.size()), 0.0);
  std::vector<int64_t> fire(static_cast<size_t>(p.d_sae), 0);
  SaeWorkspace ws;
  const auto s1 = sae_forward_backward(p, cfg, x.data(), 32, N, dead.data(), grad.data(),
                                       fire.data(), ws);
  const auto s2 = sae_forward_backward(p, cfg, x.data() + 32 * D, 32, N, dead.data(),
                                       grad.data(), fire.data(), ws);
  EXPECT_EQ(fire, whole.fire);
  EXPECT_EQ(s1.sum_active + s2.sum_active, whole.sums.sum_active);
  EXPECT_EQ(s1.n_tokens + s2.n_tokens, N);
  EXPECT_NEAR(s1.sum_sq_err + s2.sum_sq_err, whole.sums.sum_sq_err, 1e-6 * whole.sums.sum_sq_err);
  EXPECT_NEAR(s1.aux_sq_err + s2.aux_sq_err, whole.sums.aux_sq_err, 1e-6 * whole.sums.aux_sq_err);
  EXPECT_GT(whole.sums.aux_sq_err, 0.0);
  double gmax = 0.0, dmax = 0.0;
  for (size_t i = 0; i < grad.size(); ++i) {
    gmax = std::max(gmax, std::abs(whole.grad[i]));
    dmax = std::max(dmax, std::abs(grad[i] - whole.grad[i]));
  }
  EXPECT_GT(gmax, 0.0);
  return dmax / gmax;
}

// The encoder sgemm is the only step whose rounding depends on the batch shape (OpenBLAS
// picks different micro-kernels for different row counts). With dyadic inputs every
// encoder product and sum is exact in float, so pre-activations agree bit for bit and the
// split must reproduce the gradient to double rounding: this checks the accumulation order.
TEST(TopKSae, SplitBatchGivesSameGradientExactEncoder) {
  const int64_t D = 12, F = 40, N = 64;
  TopKConfig cfg;
  cfg.k = 4;
  cfg.auxk = 5;
  std::mt19937_64 rng(4);
  auto dyadic = [&](int range, float unit) { return float(int(rng() % uint64_t(2 * range + 1)) - range) * unit; };
  std::vector<float> x(static_cast<size_t>(N * D));
  for (auto& e : x) e = dyadic(16, 1.0f / 8);
  SaeParams p = random_sae_params({D, F}, 10);  // W_dec stays generic: the decoder is per token
  for (int64_t i = 0; i < F * D; ++i) p.W_encT()[i] = dyadic(16, 1.0f / 16);
  for (int64_t f = 0; f < F; ++f) p.b_enc()[f] = dyadic(8, 1.0f / 16);
  for (int64_t d = 0; d < D; ++d) p.b_dec()[d] = dyadic(4, 1.0f / 8);
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  for (int64_t f = 1; f < F; f += 4) dead[f] = 1;
  EXPECT_LE(split_batch_difference(p, cfg, x, dead), 1e-12);
}

// With generic inputs the split agrees to float rounding of the encoder.
TEST(TopKSae, SplitBatchGivesSameGradientGenericInputs) {
  const int64_t D = 12, F = 40, N = 64;
  TopKConfig cfg;
  cfg.k = 4;
  cfg.auxk = 5;
  const auto x = random_normal(static_cast<size_t>(N * D), 4);
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  for (int64_t f = 1; f < F; f += 4) dead[f] = 1;
  EXPECT_LE(split_batch_difference(random_sae_params({D, F}, 10), cfg, x, dead), 1e-5);
}

TEST(TopKSae, ForwardBackwardIsBitwiseDeterministicAcrossThreads) {
  const int64_t D = 33, F = 97, N = 517;
  TopKConfig cfg;
  cfg.k = 7;
  cfg.auxk = 11;
  const auto x = random_normal(size_t(N * D), 5);
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  for (int64_t f = 0; f < F; f += 2) dead[f] = 1;
  SaeParams p = random_sae_params({D, F}, 11);
  GradRun one, two;
  {
    ThreadCount tc(1);
    one = run_grad(p, cfg, x.data(), N, N, dead.data());
  }
  {
    ThreadCount tc(2);
    two = run_grad(p, cfg, x.data(), N, N, dead.data());
  }
  EXPECT_EQ(0, std::memcmp(one.grad.data(), two.grad.data(), one.grad.size() * sizeof(double)));
  EXPECT_EQ(one.fire, two.fire);
}

TEST(TopKSae, KLargerThanDSaeIsAnInternalError) {
  SaeParams p(4, 8);
  TopKConfig cfg;
  cfg.k = 9;
  std::vector<float> x(4);
  SaeWorkspace ws;
  EXPECT_THROW(sae_encode_decode(p, cfg, x.data(), 1, ws), SaeError);
}

// ---------------------------------------------------------------- geometric median

double sum_dist(const std::vector<float>& x, int64_t N, int64_t D, const std::vector<double>& y) {
  double s = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      const double e = x[n * D + d] - y[d];
      ss += e * e;
    }
    s += std::sqrt(ss);
  }
  return s;
}

TEST(TopKSaeMedian, NoBetterPointNearby) {
  const int64_t N = 201, D = 5;
  auto x = random_normal(size_t(N * D), 60);
  for (int64_t n = 0; n < 20; ++n) x[n * D] += 40.0f;  // outliers drag the mean
  const auto gm = geometric_median(x.data(), N, D);
  const auto mean = row_mean(x.data(), N, D);
  std::vector<double> y(gm.begin(), gm.end()), m(mean.begin(), mean.end());
  const double f = sum_dist(x, N, D, y);
  EXPECT_LT(f, sum_dist(x, N, D, m) - 1.0);  // clearly better than the mean
  std::mt19937_64 rng(61);
  std::normal_distribution<double> nd;
  for (int t = 0; t < 40; ++t) {
    std::vector<double> dir(static_cast<size_t>(D));
    if (t < 2 * D) {
      dir[t / 2] = (t % 2) ? 1.0 : -1.0;
    } else {
      for (auto& e : dir) e = nd(rng);
    }
    for (double delta : {1e-2, 1e-3}) {
      std::vector<double> z = y;
      for (int64_t d = 0; d < D; ++d) z[d] += delta * dir[d];
      EXPECT_LE(f, sum_dist(x, N, D, z) + 1e-9 * f) << "direction " << t << " delta " << delta;
    }
  }
}

TEST(TopKSaeMedian, ConvexQuadrilateralIsDiagonalIntersection) {
  // For four points in convex position the geometric median is where the diagonals cross.
  // Embedded in D = 3 with an offset; the mean (2.5, 2) is not the answer.
  const double A[2] = {0, 0}, Bp[2] = {4, 0}, C[2] = {5, 3}, Dp[2] = {1, 5};
  const float off[3] = {1.5f, -2.0f, 0.25f};
  std::vector<float> x;
  for (const double* q : {A, Bp, C, Dp}) {
    x.push_back(float(q[0]) + off[0]);
    x.push_back(float(q[1]) + off[1]);
    x.push_back(off[2]);
  }
  // A + s (C - A) = B + u (D - B): solve the 2x2 system for s.
  const double a11 = C[0] - A[0], a12 = -(Dp[0] - Bp[0]), a21 = C[1] - A[1], a22 = -(Dp[1] - Bp[1]);
  const double r1 = Bp[0] - A[0], r2 = Bp[1] - A[1];
  const double sdet = (r1 * a22 - a12 * r2) / (a11 * a22 - a12 * a21);
  const double want[3] = {A[0] + sdet * a11 + off[0], A[1] + sdet * a21 + off[1], off[2]};
  const auto gm = geometric_median(x.data(), 4, 3, 1000, 1e-10);
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(gm[d], want[d], 1e-4) << "coordinate " << d;
}

TEST(TopKSaeMedian, WideAngleTriangleGivesTheVertexAndEqualRowsGiveThemselves) {
  // The angle at (0,0) is over 120 degrees, so the median is that vertex (a data point:
  // the Weiszfeld 1/distance guard is needed).
  const std::vector<float> tri = {0, 0, 1, 0, -1, 0.1f};
  const auto gm = geometric_median(tri.data(), 3, 2, 1000, 1e-12);
  EXPECT_NEAR(gm[0], 0.0, 1e-4);
  EXPECT_NEAR(gm[1], 0.0, 1e-4);
  const std::vector<float> same = {3, -1, 3, -1, 3, -1};
  const auto gs = geometric_median(same.data(), 3, 2);
  EXPECT_EQ(gs, (std::vector<float>{3, -1}));
}

// ---------------------------------------------------------------- init

TEST(TopKSaeInit, TiedUnitRowsDeterministicFromSeed) {
  const int64_t D = 64, F = 512;
  SaeParams a(D, F), b(D, F), c(D, F);
  init_tied(a, 42);
  {
    ThreadCount tc(1);
    init_tied(b, 42);
  }
  init_tied(c, 43);
  EXPECT_EQ(a.data, b.data);  // depends on the seed only, not on the thread count
  EXPECT_NE(a.data, c.data);
  double sum = 0, sumsq = 0;
  for (int64_t f = 0; f < F; ++f) {
    double nn = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double w = a.W_dec()[f * D + d];
      nn += w * w;
      sum += w;
      sumsq += w * w;
      ASSERT_EQ(a.W_encT()[f * D + d], a.W_dec()[f * D + d]);
    }
    EXPECT_NEAR(std::sqrt(nn), 1.0, 1e-6);
  }
  for (int64_t f = 0; f < F; ++f) EXPECT_EQ(a.b_enc()[f], 0.0f);
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(a.b_dec()[d], 0.0f);
  // Gaussian directions: entries have mean ~0; per-coordinate spread is even.
  EXPECT_NEAR(sum / double(F * D), 0.0, 0.01);
  double max_col = 0, min_col = 1e9;
  for (int64_t d = 0; d < D; ++d) {
    double s = 0;
    for (int64_t f = 0; f < F; ++f) s += double(a.W_dec()[f * D + d]) * a.W_dec()[f * D + d];
    max_col = std::max(max_col, s);
    min_col = std::min(min_col, s);
  }
  EXPECT_LT(max_col / min_col, 1.6);  // each column holds ~F/D = 8 of the squared mass
}

// ---------------------------------------------------------------- training

TEST(TopKSaeTrain, TinyPlantedFeaturesLossDecreases) {
  const int64_t D = 16, F = 32, N = 64, n_feat = 6;
  TopKConfig cfg;
  cfg.k = 2;
  cfg.auxk = 8;
  const auto feats_raw = random_normal(size_t(n_feat * D), 70);
  std::vector<double> feats(feats_raw.begin(), feats_raw.end());
  for (int64_t i = 0; i < n_feat; ++i) {
    double nn = 0;
    for (int64_t d = 0; d < D; ++d) nn += feats[i * D + d] * feats[i * D + d];
    for (int64_t d = 0; d < D; ++d) feats[i * D + d] /= std::sqrt(nn);
  }
  std::mt19937_64 rng(71);
  std::uniform_real_distribution<double> coef(0.5, 1.5);
  auto batch = [&]() {  // each token: two distinct planted features plus an offset
    std::vector<float> x(static_cast<size_t>(N * D));
    for (int64_t n = 0; n < N; ++n) {
      const int64_t a = int64_t(rng() % n_feat);
      const int64_t b = (a + 1 + int64_t(rng() % (n_feat - 1))) % n_feat;
      const double ca = coef(rng), cb = coef(rng);
      for (int64_t d = 0; d < D; ++d)
        x[n * D + d] = float(0.3 + ca * feats[a * D + d] + cb * feats[b * D + d]);
    }
    return x;
  };
  const auto eval = batch();
  SaeParams p(D, F);
  init_tied(p, 5);
  const auto med = geometric_median(eval.data(), N, D);
  std::copy(med.begin(), med.end(), p.b_dec());
  AdamConfig adam;
  adam.lr = 5e-3f;
  AdamState state;
  SaeWorkspace ws;
  std::vector<double> grad(static_cast<size_t>(p.size()));
  std::vector<float> gradf(static_cast<size_t>(p.size()));
  std::vector<int64_t> fire(static_cast<size_t>(F));
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  const double before = sae_loss_reference(p, cfg, eval.data(), N, N, nullptr);
  for (int step = 0; step < 300; ++step) {
    const auto x = batch();
    std::fill(grad.begin(), grad.end(), 0.0);
    std::fill(fire.begin(), fire.end(), 0);
    sae_forward_backward(p, cfg, x.data(), N, N, dead.data(), grad.data(), fire.data(), ws);
    for (size_t i = 0; i < grad.size(); ++i) gradf[i] = float(grad[i]);
    sae_apply_gradient(p, gradf, state, adam);
    for (int64_t f = 0; f < F; ++f) dead[f] = fire[f] == 0;
  }
  const double after = sae_loss_reference(p, cfg, eval.data(), N, N, nullptr);
  EXPECT_EQ(state.t, 300);
  EXPECT_LT(after, 0.25 * before) << "before " << before << " after " << after;
  for (int64_t f = 0; f < F; ++f) {
    double nn = 0;
    for (int64_t d = 0; d < D; ++d) nn += double(p.W_dec()[f * D + d]) * p.W_dec()[f * D + d];
    EXPECT_NEAR(std::sqrt(nn), 1.0, 1e-5);  // decoder rows stay on the unit sphere
  }
}

}  // namespace
}  // namespace saepipe
