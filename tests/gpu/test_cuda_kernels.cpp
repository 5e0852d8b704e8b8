// Parity: every CUDA kernel (kernels/cuda) against its CPU reference (kernels/cpu); the TopK
// step and the device gradient communicators are in test_cuda_step.cpp. Without a CUDA device every test skips (GTEST_SKIP), so machines without a
// GPU compile and run this binary.
//
// Tolerance rule (one, as in llm.c): |got - ref| <= atol + rtol * |ref|, with rtol a small
// multiple of the compared type's epsilon and atol scaled by the magnitude of the terms
// summed (the sum of their absolute values), since a reordered sum can only err relative to
// that. Kernels that perform the CPU's operations in the CPU's order are compared bit for bit.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "kernels/kernels.hpp"
#include "tests/gpu/cuda_test_util.hpp"
#include "tests/unit/test_util.hpp"

namespace saepipe {
namespace {

using cuda::DeviceBuffer;
using namespace test;  // fixture, tolerances, random_normal

// ---------------------------------------------------------------- matmul

struct GemmCase {
  int64_t M, N, K;
};

void gemm_parity(cudaStream_t stream, const GemmCase& c, cuda::GemmPrecision prec, bool bf16_inputs, double rtol) {
  cuda::Blas blas;
  const float alpha = 0.7f, beta = -0.3f;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t lda = (ta ? c.M : c.K) + 3, ldb = (tb ? c.K : c.N) + 2, ldc = c.N + 5;
      const int64_t rows_a = ta ? c.K : c.M, rows_b = tb ? c.N : c.K;
      auto A = random_normal(size_t(rows_a * lda), 1), B = random_normal(size_t(rows_b * ldb), 2);
      auto C = random_normal(size_t(c.M * ldc), 3);
      if (bf16_inputs) A = round_bf16(A), B = round_bf16(B);
      auto ref = C;
      cpu::matmul(ta, tb, c.M, c.N, c.K, alpha, A.data(), lda, B.data(), ldb, beta, ref.data(), ldc);
      DeviceBuffer<float> dC;
      dC.upload(C, stream);
      if (bf16_inputs) {
        DeviceBuffer<__nv_bfloat16> dA, dB;
        dA.upload(to_bf16_host(A), stream);
        dB.upload(to_bf16_host(B), stream);
        cuda::matmul(ta, tb, c.M, c.N, c.K, alpha, dA.data(), lda, dB.data(), ldb, beta, dC.data(), ldc, blas, stream);
      } else {
        DeviceBuffer<float> dA, dB;
        dA.upload(A, stream);
        dB.upload(B, stream);
        cuda::matmul(ta, tb, c.M, c.N, c.K, alpha, dA.data(), lda, dB.data(), ldb, beta, dC.data(), ldc, prec, blas,
                     stream);
      }
      SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
      const auto got = dC.download(stream);
      // Magnitude of each output: sum_k |alpha a b| + |beta c|; padding columns untouched.
      std::vector<double> mag(got.size(), 0.0);
      std::vector<float> got_pad, ref_pad;
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          if (j >= c.N) {
            got_pad.push_back(got[i * ldc + j]);
            ref_pad.push_back(C[i * ldc + j]);
            continue;
          }
          double m = std::abs(beta * C[i * ldc + j]);
          for (int64_t k = 0; k < c.K; ++k) {
            const double a = ta ? A[k * lda + i] : A[i * lda + k];
            const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
            m += std::abs(alpha * a * b);
          }
          mag[i * ldc + j] = m;
        }
      SCOPED_TRACE(testing::Message() << "ta=" << ta << " tb=" << tb << " precision=" << cuda::to_string(prec)
                                      << " bf16_inputs=" << bf16_inputs);
      expect_close(got, ref, mag, rtol, "C");
      expect_bitwise(got_pad, ref_pad, "C padding");
    }
}

TEST_F(Cuda, MatmulFp32AllTransposes) {
  for (GemmCase c : {GemmCase{37, 19, 23}, GemmCase{129, 257, 96}})
    gemm_parity(stream, c, cuda::GemmPrecision::FP32, false, 8 * 128 * kEpsF);
}

TEST_F(Cuda, MatmulTf32AndBf16FastModes) {
  // TF32 keeps 10 mantissa bits of each input (2^-11), BF16 7 (2^-8); fp32 accumulation.
  gemm_parity(stream, {129, 257, 96}, cuda::GemmPrecision::TF32, false, 4 * std::ldexp(1.0, -11));
  gemm_parity(stream, {129, 257, 96}, cuda::GemmPrecision::BF16, false, 4 * std::ldexp(1.0, -8));
}

TEST_F(Cuda, MatmulBf16InputsFp32Accumulate) {
  // Inputs already bf16: the products are exact in fp32, only the accumulation rounds.
  gemm_parity(stream, {129, 257, 96}, cuda::GemmPrecision::FP32, true, 8 * 128 * kEpsF);
}

TEST_F(Cuda, MatmulRejectsTooSmallLeadingDimension) {
  cuda::Blas blas;
  DeviceBuffer<float> A(12), B(12), C(12);
  EXPECT_THROW(cuda::matmul(false, false, 3, 4, 3, 1.0f, A.data(), 2, B.data(), 4, 0.0f, C.data(), 4,
                            cuda::GemmPrecision::FP32, blas, stream),
               SaeError);
}

// ---------------------------------------------------------------- top-k

struct TopKCase {
  int64_t N, F, K;
  bool bias, mask;
  int quantise;  // 0: continuous values; q > 0: values in q levels (many ties)
};

void topk_parity(cudaStream_t stream, const TopKCase& c, uint64_t seed) {
  auto x = random_normal(size_t(c.N * c.F), seed);
  if (c.quantise > 0)
    for (auto& v : x) v = std::round(v * float(c.quantise) / 4.0f);
  std::vector<float> bias;
  if (c.bias) bias = random_normal(size_t(c.F), seed + 1, 0.5f);
  std::vector<uint8_t> allowed;
  if (c.mask) {
    std::mt19937_64 rng(seed + 2);
    allowed.resize(size_t(c.F));
    for (auto& a : allowed) a = uint8_t(rng() % 3 == 0);  // about a third allowed
  }
  // Special values in the first row: NaN (never selected), +-0, +-inf.
  if (c.F >= 8) {
    x[0] = std::numeric_limits<float>::quiet_NaN();
    x[1] = -0.0f;
    x[2] = 0.0f;
    x[3] = std::numeric_limits<float>::infinity();
    x[4] = -std::numeric_limits<float>::infinity();
  }
  // CPU reference on x + bias, added in float as the GPU does.
  auto xb = x;
  if (c.bias)
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t f = 0; f < c.F; ++f) xb[n * c.F + f] = x[n * c.F + f] + bias[f];
  std::vector<int32_t> ref_idx(size_t(c.N * c.K));
  std::vector<float> ref_val(size_t(c.N * c.K));
  cpu::topk_rows(xb.data(), c.N, c.F, c.K, c.mask ? allowed.data() : nullptr, ref_idx.data(), ref_val.data());

  DeviceBuffer<float> dx, dbias, dval(c.N * c.K);
  DeviceBuffer<uint8_t> dallowed;
  DeviceBuffer<int32_t> didx(c.N * c.K);
  dx.upload(x, stream);
  if (c.bias) dbias.upload(bias, stream);
  if (c.mask) dallowed.upload(allowed, stream);
  cuda::topk_rows(dx.data(), c.N, c.F, c.K, c.mask ? dallowed.data() : nullptr, didx.data(), dval.data(), stream,
                  c.bias ? dbias.data() : nullptr);
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  SCOPED_TRACE(testing::Message() << "N=" << c.N << " F=" << c.F << " K=" << c.K << " bias=" << c.bias
                                  << " mask=" << c.mask << " quantise=" << c.quantise);
  expect_bitwise(didx.download(stream), ref_idx, "idx");
  expect_bitwise(dval.download(stream), ref_val, "val");
}

TEST_F(Cuda, TopKMatchesCpuOnContinuousValues) {
  uint64_t seed = 10;
  for (TopKCase c : {TopKCase{33, 1000, 1, false, false, 0},   // F % 4 != 0: scalar loads
                     TopKCase{33, 1000, 32, true, false, 0}, TopKCase{17, 4096, 32, true, false, 0},
                     TopKCase{17, 4096, 256, false, true, 0},  // AuxK-like: a mask, k = 256
                     TopKCase{5, 131072, 64, true, false, 0}, TopKCase{3, 8192, 4096, false, false, 0}})
    topk_parity(stream, c, seed++);
}

TEST_F(Cuda, TopKTiesAndFewCandidates) {
  uint64_t seed = 40;
  // Few distinct values: the radix select must descend into the column bits (ties go to the
  // lower column); a mask leaving fewer than K columns fills slots with -1 / 0.
  for (TopKCase c : {TopKCase{9, 5000, 40, false, false, 1}, TopKCase{9, 5000, 40, true, false, 2},
                     TopKCase{9, 12288, 2000, false, false, 1}, TopKCase{7, 40, 30, false, true, 0}})
    topk_parity(stream, c, seed++);
  // Every value equal: the whole row is one bin at every value level.
  const int64_t N = 3, F = 20000, K = 100;
  std::vector<float> x(size_t(N * F), 1.5f);
  std::vector<int32_t> ref_idx(static_cast<size_t>(N * K));
  std::vector<float> ref_val(static_cast<size_t>(N * K));
  cpu::topk_rows(x.data(), N, F, K, nullptr, ref_idx.data(), ref_val.data());
  DeviceBuffer<float> dx, dval(N * K);
  DeviceBuffer<int32_t> didx(N * K);
  dx.upload(x, stream);
  cuda::topk_rows(dx.data(), N, F, K, nullptr, didx.data(), dval.data(), stream);
  sync();
  expect_bitwise(didx.download(stream), ref_idx, "idx (all equal)");
  expect_bitwise(dval.download(stream), ref_val, "val (all equal)");
}

TEST_F(Cuda, TopKRejectsTooLargeK) {
  DeviceBuffer<float> x(10000), val(10000);
  DeviceBuffer<int32_t> idx(10000);
  EXPECT_THROW(cuda::topk_rows(x.data(), 1, 10000, cuda::kMaxTopK + 1, nullptr, idx.data(), val.data(), stream),
               SaeError);
}

TEST_F(Cuda, ReluSlots) {
  std::vector<float> val{1.0f, -1.0f, 0.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(), 2.5f};
  std::vector<int32_t> idx{3, 4, 5, 6, 7, 8};
  DeviceBuffer<float> dv;
  DeviceBuffer<int32_t> di;
  dv.upload(val, stream);
  di.upload(idx, stream);
  cuda::relu_slots(di.data(), dv.data(), 6, stream);
  sync();
  EXPECT_EQ(di.download(stream), (std::vector<int32_t>{3, -1, -1, -1, -1, 8}));
  EXPECT_EQ(dv.download(stream), (std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 2.5f}));
}

// ---------------------------------------------------------------- sparse decoder

// Random sparse codes: per row K distinct latents (some slots empty), optionally with one
// "dense" latent in every row (more than one 256-slot chunk on the GPU).
void random_code(int64_t N, int64_t K, int64_t F, uint64_t seed, bool dense_latent, std::vector<int32_t>& idx,
                 std::vector<float>& val) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  idx.assign(size_t(N * K), -1);
  val.assign(size_t(N * K), 0.0f);
  std::vector<int32_t> perm(static_cast<size_t>(F));
  for (int64_t n = 0; n < N; ++n) {
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t j = 0; j < K; ++j) std::swap(perm[j], perm[j + int64_t(rng() % uint64_t(F - j))]);
    if (dense_latent) {
      auto it = std::find(perm.begin(), perm.end(), 5);
      std::swap(*it, perm[0]);
    }
    for (int64_t j = 0; j < K; ++j) {
      if (rng() % 7 == 0 && !(dense_latent && j == 0)) continue;  // empty slot
      idx[n * K + j] = perm[j];
      val[n * K + j] = std::abs(nd(rng));
    }
  }
}

TEST_F(Cuda, SparseDecodeEqualsCpuBitForBit) {
  for (int64_t K : {8, 300}) {  // 300: more slots than one shared-memory tile
    const int64_t N = 57, D = 100, F = 700;
    std::vector<int32_t> idx;
    std::vector<float> val;
    random_code(N, K, F, 3 + K, false, idx, val);
    const auto W = random_normal(size_t(F * D), 4), b = random_normal(size_t(D), 5);
    for (bool with_bias : {true, false}) {
      std::vector<float> ref(static_cast<size_t>(N * D));
      cpu::sparse_decode(idx.data(), val.data(), N, K, W.data(), with_bias ? b.data() : nullptr, D, ref.data());
      DeviceBuffer<int32_t> di;
      DeviceBuffer<float> dv, dW, db, dout(N * D);
      di.upload(idx, stream), dv.upload(val, stream), dW.upload(W, stream), db.upload(b, stream);
      cuda::sparse_decode(di.data(), dv.data(), N, K, dW.data(), with_bias ? db.data() : nullptr, D, dout.data(),
                          stream);
      sync();
      SCOPED_TRACE(testing::Message() << "K=" << K << " bias=" << with_bias);
      expect_bitwise(dout.download(stream), ref, "out");
    }
  }
}

// |a_j| |w| summed like the gradient rows: the magnitude of each grad element.
template <class G>
void sparse_backward_parity(cudaStream_t stream, bool dense_latent) {
  const int64_t N = 700, K = 8, D = 70, F = 300;
  std::vector<int32_t> idx;
  std::vector<float> val;
  random_code(N, K, F, 21, dense_latent, idx, val);
  const auto W = random_normal(size_t(F * D), 22), g = random_normal(size_t(N * D), 23, 0.1f);
  const auto xc = random_normal(size_t(N * D), 24);
  // Gradients start non-zero: the kernels accumulate.
  const auto g0 = random_normal(size_t(F * D), 25), b0 = random_normal(size_t(F), 26);

  // CPU reference.
  std::vector<float> ref_dval(static_cast<size_t>(N * K));
  std::vector<double> ref_gW(g0.begin(), g0.end()), ref_gE(g0.begin(), g0.end()), ref_gb(b0.begin(), b0.end());
  cpu::sparse_decode_backward(idx.data(), val.data(), g.data(), N, K, W.data(), D, F, ref_dval.data(), ref_gW.data());
  cpu::sparse_encode_backward(idx.data(), ref_dval.data(), xc.data(), N, K, D, F, ref_gE.data(), ref_gb.data());
  // Magnitudes: sum over the latent's slots of |coef| |row|.
  std::vector<double> magW(size_t(F * D), 0.0), magE(size_t(F * D), 0.0), magb(size_t(F), 0.0), magv(size_t(N * K), 0.0);
  for (int64_t s = 0; s < N * K; ++s) {
    const int32_t f = idx[s];
    if (f < 0) continue;
    const int64_t n = s / K;
    magb[f] += std::abs(ref_dval[s]);
    for (int64_t d = 0; d < D; ++d) {
      magW[f * D + d] += std::abs(double(val[s]) * g[n * D + d]);
      magE[f * D + d] += std::abs(double(ref_dval[s]) * xc[n * D + d]);
      magv[s] += std::abs(double(W[f * D + d]) * g[n * D + d]);
    }
  }
  for (int64_t i = 0; i < F * D; ++i) magW[i] += std::abs(g0[i]), magE[i] += std::abs(g0[i]);
  for (int64_t f = 0; f < F; ++f) magb[f] += std::abs(b0[f]);

  DeviceBuffer<int32_t> di;
  DeviceBuffer<float> dv, dg, dW, dxc, ddval(N * K);
  di.upload(idx, stream), dv.upload(val, stream), dg.upload(g, stream), dW.upload(W, stream), dxc.upload(xc, stream);
  DeviceBuffer<G> dgW, dgE, dgb;
  dgW.upload(std::vector<G>(g0.begin(), g0.end()), stream);
  dgE.upload(std::vector<G>(g0.begin(), g0.end()), stream);
  dgb.upload(std::vector<G>(b0.begin(), b0.end()), stream);
  cuda::sparse_decode_backward(di.data(), dv.data(), dg.data(), N, K, dW.data(), D, F, ddval.data(), dgW.data(), stream);
  // The encoder gradient from the CPU's dval, so that the two checks are independent.
  DeviceBuffer<float> dref_dval;
  dref_dval.upload(ref_dval, stream);
  cuda::sparse_encode_backward(di.data(), dref_dval.data(), dxc.data(), N, K, D, F, dgE.data(), dgb.data(), stream);
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));

  const double rtol = std::is_same_v<G, double> ? 64 * kEpsD : 4 * kEpsF;
  SCOPED_TRACE(testing::Message() << "grad type " << (std::is_same_v<G, double> ? "double" : "float")
                                  << " dense latent " << dense_latent);
  expect_close(ddval.download(stream), ref_dval, magv, 4 * D * kEpsF, "dval");
  auto widen = [](const std::vector<G>& v) { return std::vector<double>(v.begin(), v.end()); };
  expect_close(widen(dgW.download(stream)), ref_gW, magW, rtol, "grad_W_dec");
  expect_close(widen(dgE.download(stream)), ref_gE, magE, rtol, "grad_W_encT");
  expect_close(widen(dgb.download(stream)), ref_gb, magb, rtol, "grad_b_enc");

  // Deterministic: the same call again adds the same bits again.
  DeviceBuffer<G> again;
  again.upload(std::vector<G>(g0.begin(), g0.end()), stream);
  cuda::sparse_decode_backward(di.data(), dv.data(), dg.data(), N, K, dW.data(), D, F, ddval.data(), again.data(),
                               stream);
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  expect_bitwise(again.download(stream), dgW.download(stream), "grad_W_dec, second run");
}

TEST_F(Cuda, SparseBackwardDoubleGradients) {
  sparse_backward_parity<double>(stream, false);
  sparse_backward_parity<double>(stream, true);
}

TEST_F(Cuda, SparseBackwardFloatGradients) {
  sparse_backward_parity<float>(stream, false);
  sparse_backward_parity<float>(stream, true);
}

TEST_F(Cuda, SparseEncodeBackwardMixedOverload) {
  const int64_t N = 300, K = 6, D = 20, F = 50;
  std::vector<int32_t> idx;
  std::vector<float> dpre;
  random_code(N, K, F, 31, true, idx, dpre);
  const auto xc = random_normal(size_t(N * D), 32);
  std::vector<double> ref_gE(size_t(F * D), 0.0), ref_gb(size_t(F), 0.0);
  cpu::sparse_encode_backward(idx.data(), dpre.data(), xc.data(), N, K, D, F, ref_gE.data(), ref_gb.data());
  DeviceBuffer<int32_t> di;
  DeviceBuffer<float> dp, dxc, dgE(F * D);
  DeviceBuffer<double> dgb(F);
  di.upload(idx, stream), dp.upload(dpre, stream), dxc.upload(xc, stream);
  dgE.zero(stream), dgb.zero(stream);
  cuda::sparse_encode_backward(di.data(), dp.data(), dxc.data(), N, K, D, F, dgE.data(), dgb.data(), stream);
  sync();
  const auto gE = dgE.download(stream);
  std::vector<double> gE_d(gE.begin(), gE.end());
  std::vector<double> magb(size_t(F), 0.0);
  for (int64_t s = 0; s < N * K; ++s)
    if (idx[s] >= 0) magb[idx[s]] += std::abs(dpre[s]);
  expect_close(dgb.download(stream), ref_gb, magb, 64 * kEpsD, "grad_b_enc (double)");
  expect_close(gE_d, ref_gE, {}, 2 * kEpsF, "grad_W_encT (float)");
}

// ---------------------------------------------------------------- optimiser

TEST_F(Cuda, AdamStepEqualsCpuBitForBit) {
  const int64_t n = 10007;
  auto p = random_normal(size_t(n), 41), g = random_normal(size_t(n), 42, 0.01f);
  auto m = random_normal(size_t(n), 43, 0.001f), v = random_normal(size_t(n), 44, 0.001f);
  for (auto& e : v) e = std::abs(e);
  DeviceBuffer<float> dp, dg, dm, dv;
  dp.upload(p, stream), dg.upload(g, stream), dm.upload(m, stream), dv.upload(v, stream);
  for (int64_t t : {1, 2, 1000}) {
    cpu::adam_step(p.data(), g.data(), m.data(), v.data(), n, 2e-4f, 0.9f, 0.999f, 6.25e-10f, t);
    cuda::adam_step(dp.data(), dg.data(), dm.data(), dv.data(), n, 2e-4f, 0.9f, 0.999f, 6.25e-10f, t, stream);
  }
  sync();
  expect_bitwise(dp.download(stream), p, "p");
  expect_bitwise(dm.download(stream), m, "m");
  expect_bitwise(dv.download(stream), v, "v");
}

TEST_F(Cuda, ProjectOutAndNormalizeRows) {
  const int64_t F = 77, D = 300;
  auto W = random_normal(size_t(F * D), 51), grad = random_normal(size_t(F * D), 52);
  std::fill(W.begin(), W.begin() + D, 0.0f);  // a zero row: left alone by both
  DeviceBuffer<float> dW, dg;
  dW.upload(W, stream), dg.upload(grad, stream);
  cpu::project_out_parallel(W.data(), grad.data(), F, D);
  cuda::project_out_parallel(dW.data(), dg.data(), F, D, stream);
  cpu::normalize_rows(W.data(), F, D);
  cuda::normalize_rows(dW.data(), F, D, stream);
  sync();
  // Row-wise magnitudes: |g| + |c w| for the projection, |w| for the normalisation.
  expect_close(dg.download(stream), grad, std::vector<double>(grad.size(), 4.0), 4 * kEpsF, "projected grad");
  expect_close(dW.download(stream), W, {}, 2 * kEpsF, "normalised W");
}

TEST_F(Cuda, FusedUnitRowAdamEqualsCpuSequence) {
  const int64_t F = 129, D = 768;
  auto W = random_normal(size_t(F * D), 61), grad = random_normal(size_t(F * D), 62, 0.01f);
  cpu::normalize_rows(W.data(), F, D);
  std::vector<float> m(size_t(F * D), 0.0f), v(size_t(F * D), 0.0f);
  DeviceBuffer<float> dW, dg, dm, dv;
  dW.upload(W, stream), dg.upload(grad, stream), dm.upload(m, stream), dv.upload(v, stream);
  for (int64_t t = 1; t <= 3; ++t) {
    auto g = grad;
    cpu::project_out_parallel(W.data(), g.data(), F, D);
    cpu::adam_step(W.data(), g.data(), m.data(), v.data(), F * D, 1e-3f, 0.9f, 0.999f, 6.25e-10f, t);
    cpu::normalize_rows(W.data(), F, D);
    dg.upload(grad, stream);
    cuda::adam_step_unit_rows(dW.data(), dg.data(), dm.data(), dv.data(), F, D, 1e-3f, 0.9f, 0.999f, 6.25e-10f, t,
                              stream);
  }
  sync();
  // Adam divides by sqrt(v): a last-bit difference in the projected gradient of a tiny
  // element is amplified; compare the weights (unit rows) on the rows' scale.
  expect_close(dW.download(stream), W, std::vector<double>(W.size(), 1.0 / std::sqrt(double(D))), 64 * kEpsF, "W");
}

TEST_F(Cuda, StepHelpers) {
  const int64_t N = 300, D = 37;
  const auto x = random_normal(size_t(N * D), 71), b = random_normal(size_t(D), 72);
  DeviceBuffer<float> dx, db, dxc(N * D);
  DeviceBuffer<__nv_bfloat16> dxb(N * D);
  dx.upload(x, stream), db.upload(b, stream);
  cuda::center_rows(dx.data(), db.data(), N, D, dxc.data(), dxb.data(), stream);
  std::vector<double> w(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) w[n] = double(n % 5) - 2.0;
  DeviceBuffer<double> dw, dout;
  dw.upload(w, stream);
  dout.upload(std::vector<double>(size_t(D), 1.0), stream);
  cuda::weighted_column_sums(dw.data(), dx.data(), N, D, 0.5, dout.data(), stream);
  sync();
  std::vector<float> ref_xc(static_cast<size_t>(N * D));
  std::vector<double> ref_out(size_t(D), 1.0), mag(size_t(D), 1.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      ref_xc[n * D + d] = x[n * D + d] - b[d];
      ref_out[d] += 0.5 * w[n] * x[n * D + d];
      mag[d] += std::abs(0.5 * w[n] * x[n * D + d]);
    }
  expect_bitwise(dxc.download(stream), ref_xc, "xc");
  const auto xb = dxb.download(stream);
  std::vector<float> xb_f(xb.size()), ref_xb = round_bf16(ref_xc);
  for (size_t i = 0; i < xb.size(); ++i) xb_f[i] = __bfloat162float(xb[i]);
  expect_bitwise(xb_f, ref_xb, "xc as bf16");
  expect_close(dout.download(stream), ref_out, mag, 16 * kEpsD, "weighted column sums");
}

}  // namespace
}  // namespace saepipe
