// Parity of the TopK training step (pipeline/sae/cuda/sae) against sae_forward_backward /
// sae_apply_gradient, and of the device gradient communicators. Tolerance rule: see
// test_cuda_kernels.cpp. Without a CUDA device every test skips.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "pipeline/core/cuda/gradient_comm.hpp"
#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/sae/cuda/sae.hpp"
#include "kernels/kernels.hpp"
#include "pipeline/core/gradient_comm.hpp"
#include "pipeline/sae/sae.hpp"
#include "tests/gpu/cuda_test_util.hpp"

namespace saepipe {
namespace {

using cuda::DeviceBuffer;
using namespace test;  // fixture, tolerances, random_normal

// ---------------------------------------------------------------- the TopK step

SaeParams random_sae(int64_t D, int64_t F, uint64_t seed) {
  SaeParams p(D, F);
  init_tied(p, seed);
  auto be = random_normal(size_t(F), seed + 1, 0.05f), bd = random_normal(size_t(D), seed + 2, 0.1f);
  std::copy(be.begin(), be.end(), p.b_enc());
  std::copy(bd.begin(), bd.end(), p.b_dec());
  return p;
}

// The step against sae_forward_backward (and Adam against sae_apply_gradient), without and
// with AuxK (half the latents dead), whole batch and in rounds of 64 tokens.
void step_parity(cudaStream_t stream, int64_t auxk, int64_t chunk) {
  const int64_t N = 200, D = 48, F = 512, K = 8;
  const SaeParams p = random_sae(D, F, 81);
  const auto x = random_normal(size_t(N * D), 82);
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  for (int64_t f = 0; f < F; f += 2) dead[f] = 1;
  const int64_t n_dead = F / 2;
  SaeConfig cfg;
  cfg.architecture = Architecture::TopK;
  cfg.k = K;
  cfg.auxk = auxk;
  SaeWorkspace ws;
  std::vector<double> ref_grad(size_t(p.size()), 0.0);
  std::vector<int64_t> ref_fire(size_t(F), 0);
  const SaeStepSums ref =
      sae_forward_backward(p, cfg, x.data(), N, N, dead.data(), ref_grad.data(), ref_fire.data(), ws);

  SCOPED_TRACE(testing::Message() << "auxk=" << auxk << " chunk_tokens=" << chunk);
  cuda::TopKStepConfig gcfg;
  gcfg.k = K;
  gcfg.precision = cuda::GemmPrecision::FP32;
  gcfg.chunk_tokens = chunk;
  gcfg.auxk = auxk;
  gcfg.auxk_coef = cfg.auxk_coef;
  cuda::TopKSaeStep step(D, F, gcfg);
  cuda::Blas blas;
  DeviceBuffer<float> dp, dx;
  DeviceBuffer<uint8_t> ddead;
  dp.upload(p.data), dx.upload(x), ddead.upload(dead);
  DeviceBuffer<double> dgrad(p.size());
  DeviceBuffer<int64_t> dfire(F);
  dgrad.zero(stream), dfire.zero(stream);
  step.forward_backward(dp.data(), dx.data(), N, N, ddead.data(), n_dead, dgrad.data(), dfire.data(), blas, stream);
  const auto sums = step.take_sums(stream);
  // The selection (the GEMMs differ only in rounding: random data has no near ties).
  std::vector<int32_t> gidx(static_cast<size_t>(N * K));
  SAE_CUDA_CHECK(cudaMemcpy(gidx.data(), step.idx(), sizeof(int32_t) * gidx.size(), cudaMemcpyDeviceToHost));
  expect_bitwise(gidx, std::vector<int32_t>(ws.idx.begin(), ws.idx.begin() + N * K), "idx");
  EXPECT_EQ(dfire.download(), ref_fire);
  EXPECT_EQ(sums.active, int64_t(ref.sum_active));
  EXPECT_NEAR(sums.sum_sq_err, ref.sum_sq_err, 1e-5 * ref.sum_sq_err);
  EXPECT_NEAR(sums.aux_sq_err, ref.aux_sq_err, 1e-5 * ref.aux_sq_err);
  if (auxk > 0) EXPECT_GT(ref.aux_sq_err, 0.0);
  // Gradients, per parameter block, on the block's scale.
  const auto got = dgrad.download();
  const int64_t offs[] = {p.off_W_encT(), p.off_b_enc(), p.off_W_dec(), p.off_b_dec(), p.off_log_threshold(), p.size()};
  const char* names[] = {"grad W_encT", "grad b_enc", "grad W_dec", "grad b_dec", "grad log_threshold"};
  for (int blk = 0; blk < 5; ++blk) {
    std::vector<double> a(got.begin() + offs[blk], got.begin() + offs[blk + 1]);
    std::vector<double> b(ref_grad.begin() + offs[blk], ref_grad.begin() + offs[blk + 1]);
    double scale = 0.0;
    for (double v : b) scale = std::max(scale, std::abs(v));
    expect_close(a, b, std::vector<double>(b.size(), scale), 1e-4, names[blk]);
  }

  // Adam from the same float gradient: sae_apply_gradient against apply_adam.
  SaeParams cpu_p = p;
  std::vector<float> fgrad(ref_grad.begin(), ref_grad.end());
  AdamState state;
  AdamConfig acfg;
  acfg.lr = 1e-3f;
  sae_apply_gradient(cpu_p, fgrad, state, acfg, true);
  DeviceBuffer<float> dfg, dm(p.size()), dv(p.size());
  dfg.upload(std::vector<float>(ref_grad.begin(), ref_grad.end()));
  dm.zero(stream), dv.zero(stream);
  step.apply_adam(dp.data(), dfg.data(), dm.data(), dv.data(), 1, acfg.lr, acfg.beta1, acfg.beta2, acfg.eps, true,
                  stream);
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  expect_close(dp.download(), cpu_p.data, std::vector<double>(cpu_p.data.size(), acfg.lr), 1e-3, "params after Adam");
}

TEST_F(Cuda, TopKStepMatchesCpuForwardBackwardAndAdam) {
  step_parity(stream, 0, 0);
  step_parity(stream, 0, 64);
}

TEST_F(Cuda, TopKStepWithAuxKMatchesCpu) {
  step_parity(stream, 32, 0);
  step_parity(stream, 32, 64);
}

TEST_F(Cuda, TopKStepIsDeterministicAndBf16IsClose) {
  const int64_t N = 512, D = 64, F = 1024, K = 16;
  const SaeParams p = random_sae(D, F, 91);
  const auto x = random_normal(size_t(N * D), 92);
  DeviceBuffer<float> dp, dx;
  dp.upload(p.data), dx.upload(x);
  cuda::Blas blas;
  double sse[3] = {};
  int i = 0;
  for (auto prec : {cuda::GemmPrecision::FP32, cuda::GemmPrecision::TF32, cuda::GemmPrecision::BF16}) {
    cuda::TopKStepConfig gcfg;
    gcfg.k = K;
    gcfg.precision = prec;
    cuda::TopKSaeStep step(D, F, gcfg);
    DeviceBuffer<float> g1(p.size()), g2(p.size());
    g1.zero(stream), g2.zero(stream);
    step.forward_backward(dp.data(), dx.data(), N, N, nullptr, 0, g1.data(), nullptr, blas, stream);
    sse[i++] = step.take_sums(stream).sum_sq_err;
    step.forward_backward(dp.data(), dx.data(), N, N, nullptr, 0, g2.data(), nullptr, blas, stream);
    sync();
    SCOPED_TRACE(cuda::to_string(prec));
    expect_bitwise(g2.download(), g1.download(), "gradient, second run");
  }
  // Reduced-precision encoders change a few selections only: the loss stays close.
  EXPECT_NEAR(sse[1], sse[0], 0.02 * sse[0]);
  EXPECT_NEAR(sse[2], sse[0], 0.05 * sse[0]);
}

// ---------------------------------------------------------------- gradient communicators

// A host communicator that acts as `copies` ranks holding the same vector: it multiplies.
class TimesHostComm final : public GradientComm {
 public:
  explicit TimesHostComm(float copies) : copies_(copies) {}
  void start(float* data, int64_t n, void* stream) override {
    EXPECT_TRUE(stream == nullptr);
    for (int64_t i = 0; i < n; ++i) data[i] *= copies_;
  }
  void wait(void*) override {}
  std::string describe() const override { return "times"; }

 private:
  float copies_;
};

TEST_F(Cuda, StagedDeviceCommGoesThroughTheHost) {
  cuda::StagedDeviceComm comm(std::make_unique<TimesHostComm>(3.0f));
  const int64_t n = 100001;
  const auto v = random_normal(size_t(n), 101);
  DeviceBuffer<float> d, other(n);
  d.upload(v);
  comm.start(d.data(), n, stream);
  // Another stream ordered after the sum reads the result.
  cudaStream_t s2;
  SAE_CUDA_CHECK(cudaStreamCreate(&s2));
  comm.wait(s2);
  SAE_CUDA_CHECK(cudaMemcpyAsync(other.data(), d.data(), sizeof(float) * size_t(n), cudaMemcpyDeviceToDevice, s2));
  SAE_CUDA_CHECK(cudaStreamSynchronize(s2));
  cudaStreamDestroy(s2);
  std::vector<float> want(v);
  for (auto& e : want) e *= 3.0f;
  expect_bitwise(other.download(), want, "staged sum");
  comm.allreduce_sum(nullptr, 0, stream);
}

TEST_F(Cuda, NcclCommSingleRank) {
  if (!cuda::have_nccl()) GTEST_SKIP() << "built without NCCL";
#ifdef SAEPIPE_HAVE_NCCL
  const int64_t n = 65537;
  const auto v = random_normal(size_t(n), 111);
  for (WireType wire : {WireType::Float32, WireType::BFloat16}) {
    cuda::NcclComm comm(0, 1, wire, [](void*, size_t) {});
    DeviceBuffer<float> d;
    d.upload(v);
    comm.start(d.data(), n, stream);
    comm.wait(nullptr);
    SCOPED_TRACE(comm.describe());
    // One rank: the sum is the vector itself, rounded to bf16 on a bf16 wire.
    expect_bitwise(d.download(), wire == WireType::BFloat16 ? round_bf16(v) : v, "sum over one rank");
  }
#endif
}

}  // namespace
}  // namespace saepipe
