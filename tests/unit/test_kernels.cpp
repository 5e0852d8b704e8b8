// Every CPU kernel against a plain double-precision loop written here, on odd sizes.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "tests/unit/test_util.hpp"

namespace saepipe {
namespace {

using test::random_normal;
using test::ThreadCount;


// One tolerance rule (as in llm.c): |got - ref| <= atol + rtol * |ref|.
void expect_close(double got, double ref, double atol, double rtol, const char* what, size_t i) {
  EXPECT_LE(std::abs(got - ref), atol + rtol * std::abs(ref)) << what << "[" << i << "]: got "
                                                              << got << ", want " << ref;
}


// ---------------------------------------------------------------- matmul

TEST(KernelMatmul, AllTransposeCombosWithAlphaBeta) {
  const int64_t M = 37, N = 19, K = 23;
  const float alpha = 0.7f, beta = -0.3f;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Leading dimensions larger than needed, to check they are honoured.
      const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
      const int64_t rows_a = ta ? K : M, rows_b = tb ? N : K;
      auto A = random_normal(size_t(rows_a * lda), 1);
      auto B = random_normal(size_t(rows_b * ldb), 2);
      auto C = random_normal(size_t(M * ldc), 3);
      const auto C0 = C;
      cpu::matmul(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0.0, mag = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const double a = ta ? A[k * lda + i] : A[i * lda + k];
            const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
            s += a * b;
            mag += std::abs(a * b);
          }
          const double ref = alpha * s + beta * double(C0[i * ldc + j]);
          const double got = C[i * ldc + j];
          EXPECT_LE(std::abs(got - ref), 1e-5 * (mag + 1.0))
              << "ta=" << ta << " tb=" << tb << " at (" << i << "," << j << ")";
        }
      // Padding columns of C are not touched.
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = N; j < ldc; ++j)
          EXPECT_EQ(C[i * ldc + j], C0[i * ldc + j]);
    }
}

TEST(KernelMatmul, RejectsTooSmallLeadingDimension) {
  std::vector<float> A(12), B(12), C(12);
  EXPECT_THROW(cpu::matmul(false, false, 3, 4, 3, 1.0f, A.data(), 2, B.data(), 4, 0.0f,
                           C.data(), 4),
               SaeError);
}

// ---------------------------------------------------------------- top-k

// Reference: sort candidate columns by (value descending, index ascending).
void topk_reference(const std::vector<float>& x, int64_t N, int64_t F, int64_t K,
                    const uint8_t* allowed, std::vector<int32_t>& idx, std::vector<float>& val) {
  idx.assign(size_t(N * K), -1);
  val.assign(size_t(N * K), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<int32_t> cols;
    for (int64_t c = 0; c < F; ++c)
      if (!allowed || allowed[c]) cols.push_back(int32_t(c));
    std::sort(cols.begin(), cols.end(), [&](int32_t a, int32_t b) {
      const float va = x[n * F + a], vb = x[n * F + b];
      return va > vb || (va == vb && a < b);
    });
    for (int64_t j = 0; j < K && j < int64_t(cols.size()); ++j) {
      idx[n * K + j] = cols[j];
      val[n * K + j] = x[size_t(n * F + cols[j])];
    }
  }
}

void check_topk(const std::vector<float>& x, int64_t N, int64_t F, int64_t K,
                const uint8_t* allowed) {
  std::vector<int32_t> idx(static_cast<size_t>(N * K), 123), ref_idx;
  std::vector<float> val(static_cast<size_t>(N * K), 123.0f), ref_val;
  cpu::topk_rows(x.data(), N, F, K, allowed, idx.data(), val.data());
  topk_reference(x, N, F, K, allowed, ref_idx, ref_val);
  for (size_t s = 0; s < idx.size(); ++s) {
    ASSERT_EQ(idx[s], ref_idx[s]) << "slot " << s << " (row " << s / size_t(K) << ")";
    ASSERT_EQ(val[s], ref_val[s]) << "slot " << s;
  }
}

TEST(KernelTopk, RandomRowsMatchSortReference) {
  const int64_t N = 37, F = 101, K = 7;
  check_topk(random_normal(size_t(N * F), 10), N, F, K, nullptr);
}

TEST(KernelTopk, TiesGoToLowerIndex) {
  // Hand case: three 3s; the two with the lowest index win, in index order.
  const std::vector<float> row = {1, 3, 3, 2, 3};
  std::vector<int32_t> idx(2);
  std::vector<float> val(2);
  cpu::topk_rows(row.data(), 1, 5, 2, nullptr, idx.data(), val.data());
  EXPECT_EQ(idx, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(val, (std::vector<float>{3, 3}));
  // Many ties: values drawn from {0,..,4}, including ties straddling the K-th slot.
  const int64_t N = 37, F = 101, K = 7;
  std::mt19937_64 rng(11);
  std::vector<float> x(static_cast<size_t>(N * F));
  for (auto& e : x) e = float(rng() % 5);
  check_topk(x, N, F, K, nullptr);
}

TEST(KernelTopk, AllowedMask) {
  const int64_t N = 37, F = 101, K = 7;
  std::mt19937_64 rng(12);
  std::vector<uint8_t> allowed(static_cast<size_t>(F));
  for (auto& a : allowed) a = uint8_t(rng() % 3 == 0);
  check_topk(random_normal(size_t(N * F), 13), N, F, K, allowed.data());
}

TEST(KernelTopk, FewerAllowedThanK) {
  const int64_t N = 5, F = 101, K = 7;
  std::vector<uint8_t> allowed(static_cast<size_t>(F), 0);
  allowed[3] = allowed[50] = allowed[100] = 1;
  const auto x = random_normal(size_t(N * F), 14);
  check_topk(x, N, F, K, allowed.data());
  std::vector<int32_t> idx(static_cast<size_t>(N * K));
  std::vector<float> val(static_cast<size_t>(N * K), 9.0f);
  cpu::topk_rows(x.data(), N, F, K, allowed.data(), idx.data(), val.data());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 3; j < K; ++j) {
      EXPECT_EQ(idx[n * K + j], -1);
      EXPECT_EQ(val[n * K + j], 0.0f);
    }
}

TEST(KernelTopk, WideRowsLargeKAndInfinities) {
  // F not a multiple of the internal block, K = 256, some infinities and a sorted-ascending
  // row (worst case for the insertion buffer).
  const int64_t N = 9, F = 4099, K = 256;
  auto x = random_normal(size_t(N * F), 15);
  x[5] = -INFINITY;
  x[F + 7] = INFINITY;
  for (int64_t c = 0; c < F; ++c) x[2 * F + c] = float(c) * 0.5f;
  for (int64_t c = 0; c < F; ++c) x[3 * F + c] = -INFINITY;  // all -inf: still K picks
  check_topk(x, N, F, K, nullptr);
}

TEST(KernelTopk, NanIsNeverSelected) {
  std::vector<float> row = {NAN, 1.0f, NAN, 2.0f, NAN};
  std::vector<int32_t> idx(3);
  std::vector<float> val(3);
  cpu::topk_rows(row.data(), 1, 5, 3, nullptr, idx.data(), val.data());
  EXPECT_EQ(idx, (std::vector<int32_t>{3, 1, -1}));
  EXPECT_EQ(val[0], 2.0f);
  EXPECT_EQ(val[1], 1.0f);
  EXPECT_EQ(val[2], 0.0f);
}

TEST(KernelTopk, KLargerThanFIsAnInternalError) {
  std::vector<float> x(10);
  std::vector<int32_t> idx(11);
  std::vector<float> val(11);
  EXPECT_THROW(cpu::topk_rows(x.data(), 1, 10, 11, nullptr, idx.data(), val.data()), SaeError);
}

// ---------------------------------------------------------------- sparse decode / backward

struct SparseCase {
  int64_t N, D, F, K;
  std::vector<int32_t> idx;  // [N,K], distinct per row, some -1
  std::vector<float> val, W, g, b;
};

SparseCase make_sparse_case(int64_t N, int64_t D, int64_t F, int64_t K, uint64_t seed) {
  SparseCase c{N, D, F, K, {}, random_normal(static_cast<size_t>(N * K), seed + 1),
               random_normal(size_t(F * D), seed + 2), random_normal(static_cast<size_t>(N * D), seed + 3),
               random_normal(size_t(D), seed + 4)};
  std::mt19937_64 rng(seed);
  std::vector<int32_t> cols(static_cast<size_t>(F));
  std::iota(cols.begin(), cols.end(), 0);
  c.idx.resize(size_t(N * K));
  for (int64_t n = 0; n < N; ++n) {
    std::shuffle(cols.begin(), cols.end(), rng);
    for (int64_t j = 0; j < K; ++j)
      c.idx[n * K + j] = (rng() % 4 == 0) ? -1 : cols[j];
  }
  return c;
}

TEST(KernelSparse, DecodeMatchesDenseLoop) {
  const auto c = make_sparse_case(37, 19, 101, 7, 20);
  for (bool with_bias : {false, true}) {
    std::vector<float> out(static_cast<size_t>(c.N * c.D), 99.0f);
    cpu::sparse_decode(c.idx.data(), c.val.data(), c.N, c.K, c.W.data(),
                       with_bias ? c.b.data() : nullptr, c.D, out.data());
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t d = 0; d < c.D; ++d) {
        double s = with_bias ? c.b[d] : 0.0;
        for (int64_t j = 0; j < c.K; ++j) {
          const int32_t f = c.idx[n * c.K + j];
          if (f >= 0) s += double(c.val[n * c.K + j]) * c.W[f * c.D + d];
        }
        expect_close(out[n * c.D + d], s, 1e-5, 1e-5, "out", size_t(n * c.D + d));
      }
  }
}

// The float64 decode sums each element over the slots in order from 0.0 (the sharded step's
// partial sums rely on it); the rounded variant is that sum plus b_dec, rounded once.
TEST(KernelSparse, DecodeF64AndRoundedMatchOrderedLoop) {
  const auto c = make_sparse_case(37, 19, 101, 7, 22);
  std::vector<double> out64(static_cast<size_t>(c.N * c.D), 99.0);
  cpu::sparse_decode_f64(c.idx.data(), c.val.data(), c.N, c.K, c.W.data(), c.D, out64.data());
  for (bool with_bias : {false, true}) {
    std::vector<float> out(static_cast<size_t>(c.N * c.D), 99.0f);
    cpu::sparse_decode_f64_rounded(c.idx.data(), c.val.data(), c.N, c.K, c.W.data(),
                                   with_bias ? c.b.data() : nullptr, c.D, out.data());
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t d = 0; d < c.D; ++d) {
        double s = 0.0;
        for (int64_t j = 0; j < c.K; ++j) {
          const int32_t f = c.idx[n * c.K + j];
          if (f >= 0) s += double(c.val[n * c.K + j]) * double(c.W[f * c.D + d]);
        }
        EXPECT_EQ(out64[n * c.D + d], s) << n << "," << d;
        EXPECT_EQ(out[n * c.D + d], float(s + (with_bias ? double(c.b[d]) : 0.0))) << n << "," << d;
      }
  }
}

TEST(KernelSparse, DecodeBackwardMatchesNaive) {
  const auto c = make_sparse_case(37, 19, 101, 7, 21);
  std::vector<float> dval(static_cast<size_t>(c.N * c.K));
  // Start from a non-zero gradient: the kernel must add, not overwrite.
  std::vector<double> grad(static_cast<size_t>(c.F * c.D), 0.25);
  cpu::sparse_decode_backward(c.idx.data(), c.val.data(), c.g.data(), c.N, c.K, c.W.data(), c.D,
                              c.F, dval.data(), grad.data());
  std::vector<double> ref(static_cast<size_t>(c.F * c.D), 0.25);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t j = 0; j < c.K; ++j) {
      const int32_t f = c.idx[n * c.K + j];
      if (f < 0) continue;
      double dot = 0.0;
      for (int64_t d = 0; d < c.D; ++d) {
        dot += double(c.W[f * c.D + d]) * c.g[n * c.D + d];
        ref[f * c.D + d] += double(c.val[n * c.K + j]) * c.g[n * c.D + d];
      }
      expect_close(dval[n * c.K + j], dot, 1e-5, 1e-5, "dval", size_t(n * c.K + j));
    }
  for (size_t i = 0; i < grad.size(); ++i) expect_close(grad[i], ref[i], 1e-12, 1e-12, "grad", i);
}

TEST(KernelSparse, EncodeBackwardMatchesNaive) {
  const auto c = make_sparse_case(37, 19, 101, 7, 22);  // val plays dpre, g plays xc
  std::vector<double> gW(static_cast<size_t>(c.F * c.D), -0.5), gb(static_cast<size_t>(c.F), 0.125);
  cpu::sparse_encode_backward(c.idx.data(), c.val.data(), c.g.data(), c.N, c.K, c.D, c.F,
                              gW.data(), gb.data());
  std::vector<double> rW(static_cast<size_t>(c.F * c.D), -0.5), rb(static_cast<size_t>(c.F), 0.125);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t j = 0; j < c.K; ++j) {
      const int32_t f = c.idx[n * c.K + j];
      if (f < 0) continue;
      rb[f] += c.val[n * c.K + j];
      for (int64_t d = 0; d < c.D; ++d)
        rW[f * c.D + d] += double(c.val[n * c.K + j]) * c.g[n * c.D + d];
    }
  for (size_t i = 0; i < gW.size(); ++i) expect_close(gW[i], rW[i], 1e-12, 1e-12, "gW", i);
  for (size_t i = 0; i < gb.size(); ++i) expect_close(gb[i], rb[i], 1e-12, 1e-12, "gb", i);
}

TEST(KernelSparse, OutOfRangeIndexIsAnInternalError) {
  auto c = make_sparse_case(4, 3, 10, 2, 23);
  c.idx[3] = 10;
  std::vector<float> dval(8);
  std::vector<double> grad(30);
  EXPECT_THROW(cpu::sparse_decode_backward(c.idx.data(), c.val.data(), c.g.data(), 4, 2,
                                           c.W.data(), 3, 10, dval.data(), grad.data()),
               SaeError);
}

// The gradient rows bitwise against an ordered loop (each element: the initial value, then
// + val * row for the slots in increasing (n, j); b_enc's: each latent's sum from 0, added
// once), on 1 and 3 threads: a sum whose order depended on the threads would show, most with
// many tokens per latent (the first case: ~200).
TEST(KernelSparse, BackwardSumsMatchOrderedLoopOnAnyThreadCount) {
  const SparseCase cases[] = {make_sparse_case(2003, 33, 61, 9, 24), make_sparse_case(53, 131, 40, 6, 25),
                              make_sparse_case(53, 131, 1200, 6, 26)};
  for (const SparseCase& c : cases) {
    const int64_t F = c.F;
    std::vector<double> want(static_cast<size_t>(F * c.D)), want_b(static_cast<size_t>(F));
    for (size_t i = 0; i < want.size(); ++i) want[i] = 0.001 * double(i % 97);
    for (size_t i = 0; i < want_b.size(); ++i) want_b[i] = 0.5;
    const std::vector<double> start = want;
    std::vector<double> lat(static_cast<size_t>(F), 0.0);
    std::vector<bool> any(static_cast<size_t>(F), false);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t j = 0; j < c.K; ++j) {
        const int32_t f = c.idx[n * c.K + j];
        if (f < 0) continue;
        const double a = c.val[n * c.K + j];
        for (int64_t d = 0; d < c.D; ++d) want[f * c.D + d] += a * double(c.g[n * c.D + d]);
        lat[f] += a;
        any[f] = true;
      }
    for (int64_t f = 0; f < F; ++f)
      if (any[f]) want_b[f] += lat[f];
    for (int threads : {1, 3}) {
      ThreadCount tc(threads);
      std::vector<float> dval(static_cast<size_t>(c.N * c.K));
      std::vector<double> gd = start, ge = start, gb(static_cast<size_t>(F), 0.5);
      cpu::sparse_decode_backward(c.idx.data(), c.val.data(), c.g.data(), c.N, c.K, c.W.data(), c.D, F, dval.data(),
                                  gd.data());
      cpu::sparse_encode_backward(c.idx.data(), c.val.data(), c.g.data(), c.N, c.K, c.D, F, ge.data(), gb.data());
      EXPECT_EQ(gd, want) << "F " << F << ", " << threads << " threads";
      EXPECT_EQ(ge, want) << "F " << F << ", " << threads << " threads";
      EXPECT_EQ(gb, want_b) << "F " << F << ", " << threads << " threads";
    }
  }
}

// ---------------------------------------------------------------- Adam, projection, norms

TEST(KernelAdam, MatchesHandWrittenFormulaOverSteps) {
  const int64_t n = 1001;
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  auto p = random_normal(size_t(n), 30);
  std::vector<float> m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  std::vector<double> rp(p.begin(), p.end()), rm(static_cast<size_t>(n), 0.0), rv(static_cast<size_t>(n), 0.0);
  for (int64_t t = 1; t <= 4; ++t) {
    const auto g = random_normal(size_t(n), 30 + uint64_t(t));
    cpu::adam_step(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, t);
    for (int64_t i = 0; i < n; ++i) {
      rm[i] = b1 * rm[i] + (1.0 - b1) * g[i];
      rv[i] = b2 * rv[i] + (1.0 - b2) * double(g[i]) * g[i];
      const double mhat = rm[i] / (1.0 - std::pow(double(b1), double(t)));
      const double vhat = rv[i] / (1.0 - std::pow(double(b2), double(t)));
      rp[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    expect_close(p[i], rp[i], 1e-6, 1e-5, "p", size_t(i));
    expect_close(m[i], rm[i], 1e-6, 1e-5, "m", size_t(i));
    expect_close(v[i], rv[i], 1e-8, 1e-5, "v", size_t(i));
  }
}

TEST(KernelAdam, ProjectOutParallelLeavesOrthogonalRows) {
  const int64_t F = 37, D = 19;
  auto W = random_normal(size_t(F * D), 40);
  for (int64_t d = 0; d < D; ++d) W[5 * D + d] = 0.0f;  // a zero row: nothing to remove
  const auto g0 = random_normal(size_t(F * D), 41);
  auto g = g0;
  cpu::project_out_parallel(W.data(), g.data(), F, D);
  for (int64_t f = 0; f < F; ++f) {
    double wg = 0, ww = 0, gg = 0, g0w = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double w = W[f * D + d], gd = g[f * D + d];
      wg += w * gd;
      ww += w * w;
      gg += gd * gd;
      g0w += w * g0[f * D + d];
    }
    if (f == 5) {
      for (int64_t d = 0; d < D; ++d) EXPECT_EQ(g[f * D + d], g0[f * D + d]);
      continue;
    }
    EXPECT_LE(std::abs(wg), 1e-6 * std::sqrt(ww * gg) + 1e-7) << "row " << f;
    // Only the parallel part was removed: g0 - g = (g0.w / w.w) w.
    for (int64_t d = 0; d < D; ++d) {
      const double removed = double(g0[f * D + d]) - g[f * D + d];
      expect_close(removed, g0w / ww * W[f * D + d], 1e-6, 1e-5, "removed",
                   size_t(f * D + d));
    }
  }
}

TEST(KernelAdam, NormalizeRowsGivesUnitRowsSameDirection) {
  const int64_t F = 37, D = 19;
  auto W = random_normal(size_t(F * D), 50, 3.0f);
  for (int64_t d = 0; d < D; ++d) W[2 * D + d] = 0.0f;
  const auto W0 = W;
  cpu::normalize_rows(W.data(), F, D);
  for (int64_t f = 0; f < F; ++f) {
    double nn = 0, n0 = 0;
    for (int64_t d = 0; d < D; ++d) {
      nn += double(W[f * D + d]) * W[f * D + d];
      n0 += double(W0[f * D + d]) * W0[f * D + d];
    }
    if (f == 2) {
      EXPECT_EQ(nn, 0.0);
      continue;
    }
    EXPECT_NEAR(std::sqrt(nn), 1.0, 1e-6) << "row " << f;
    for (int64_t d = 0; d < D; ++d)
      expect_close(W[f * D + d], W0[f * D + d] / std::sqrt(n0), 1e-7, 1e-6, "W",
                   size_t(f * D + d));
  }
}

}  // namespace
}  // namespace saepipe
