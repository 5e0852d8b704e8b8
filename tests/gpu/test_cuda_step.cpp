// The SAE on the GPU against the CPU: DeviceSae's forward and backward (pipeline/sae/cuda/sae.hpp)
// against sae_forward_backward for every architecture, with and without AuxK, on a slice of an
// aligned global batch; the CUDA training step (train_step.cu) against the CPU step over several
// steps; exact resume and determinism of the CUDA step; the device gradient communicators.
// Tolerance rule: see test_cuda_kernels.cpp. Without a CUDA device every test skips.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "kernels/kernels.hpp"
#include "pipeline/core/cuda/gradient_comm.hpp"
#include "pipeline/core/gradient_comm.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/cuda/sae.hpp"
#include "pipeline/sae/cuda/train_step.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/train_step.hpp"
#include "tests/gpu/cuda_test_util.hpp"
#include "tests/gpu/step_test_util.hpp"

namespace saepipe {
namespace {

using cuda::DeviceBuffer;
using namespace test;  // fixture, tolerances, random_normal, random_sae, run_steps

SaeConfig config_for(Architecture a, int64_t auxk) {
  SaeConfig c;
  c.architecture = a;
  c.k = 8;
  c.auxk = auxk;
  c.l1_coef = 0.3;
  c.l0_coef = 0.05;
  c.bandwidth = 0.05;  // wide, so many pre-activations fall in jumprelu's window
  c.encoder_block = 64;
  return c;
}

// This call's rows are rows [lead, lead + N) of x (the rest complete the 64-row encoder
// blocks), as a rank of a 3-rank job holds them.
void forward_backward_parity(cudaStream_t stream, Architecture arch, int64_t auxk) {
  SCOPED_TRACE(testing::Message() << to_string(arch) << " auxk=" << auxk);
  const int64_t lead = 13, N = 150, tail = 29, E = lead + N + tail, B = 600, D = 48, F = 512;
  const SaeParams p = random_sae(D, F, 81, std::log(0.05f));
  const auto x = random_normal(size_t(E * D), 82);
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  for (int64_t f = 0; f < F; f += 2) dead[f] = 1;
  const int64_t n_dead = F / 2;
  const SaeConfig cfg = config_for(arch, auxk);
  SaeWorkspace ws;
  std::vector<double> ref_grad(size_t(p.size()), 0.0);
  std::vector<int64_t> ref_fire(size_t(F), 0);
  const SaeStepSums ref = sae_forward_backward(p, cfg, x.data(), N, B, dead.data(), ref_grad.data(),
                                               ref_fire.data(), ws, lead, tail);

  cuda::DeviceSae sae(D, F, cfg, cuda::GemmPrecision::FP32);
  cuda::Blas blas;
  DeviceBuffer<float> dp, dx;
  DeviceBuffer<uint8_t> ddead;
  dp.upload(p.data, stream), dx.upload(x, stream), ddead.upload(dead, stream);
  DeviceBuffer<double> dgrad(p.size()), dsums(cuda::kStepSums);
  DeviceBuffer<unsigned long long> dfire(F);
  dgrad.zero(stream), dfire.zero(stream), dsums.zero(stream);
  sae.forward_backward(dp.data(), dx.data(), lead, N, tail, B, ddead.data(), n_dead, dgrad.data(), dfire.data(),
                       dsums.data(), {}, blas, stream);
  // The selection: the same latents (random data has no near ties at the threshold).
  ASSERT_EQ(sae.width(), ws.width);
  std::vector<int32_t> gidx(static_cast<size_t>(N * ws.width));
  SAE_CUDA_CHECK(cudaMemcpyAsync(gidx.data(), sae.idx(), sizeof(int32_t) * gidx.size(), cudaMemcpyDeviceToHost, stream));
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  expect_bitwise(gidx, std::vector<int32_t>(ws.idx.begin(), ws.idx.begin() + N * ws.width), "idx");
  const auto fire = dfire.download(stream);
  EXPECT_EQ(std::vector<int64_t>(fire.begin(), fire.end()), ref_fire);
  const auto sums = dsums.download(stream);
  EXPECT_EQ(sums[cuda::kSumActive], ref.sum_active);
  EXPECT_NEAR(sums[cuda::kSumSqErr], ref.sum_sq_err, 1e-5 * ref.sum_sq_err);
  EXPECT_NEAR(sums[cuda::kSumAuxSqErr], ref.aux_sq_err, 1e-5 * ref.aux_sq_err + 1e-12);
  EXPECT_NEAR(sums[cuda::kSumPenalty], ref.penalty, 1e-5 * std::abs(ref.penalty) + 1e-12);
  if (auxk > 0) EXPECT_GT(ref.aux_sq_err, 0.0);
  if (arch == Architecture::BatchTopK) EXPECT_EQ(sae.batch_threshold(), ws.batch_threshold);
  expect_params_close(dgrad.download(stream), ref_grad, p, 1e-4);
  if (arch == Architecture::JumpReLU) {  // the test does exercise the threshold gradient
    double g = 0;
    for (int64_t f = 0; f < F; ++f) g += std::abs(ref_grad[size_t(p.off_log_threshold() + f)]);
    EXPECT_GT(g, 0.0);
  }
}

TEST_F(Cuda, ForwardBackwardMatchesCpuForEveryArchitecture) {
  for (Architecture a : {Architecture::TopK, Architecture::BatchTopK, Architecture::ReLU, Architecture::JumpReLU}) {
    forward_backward_parity(stream, a, 0);
    forward_backward_parity(stream, a, 32);
  }
}

TEST_F(Cuda, AdamMatchesCpu) {
  const int64_t D = 48, F = 512;
  const SaeParams p = random_sae(D, F, 71, 0.0f);
  const auto g = random_normal(size_t(p.size()), 72, 0.01f);
  for (bool unit : {true, false})
    for (float threshold_lr_scale : {1.0f, 0.1f}) {  // train.threshold_lr_scale: log_threshold at its own rate
      SaeParams cpu_p = p;
      std::vector<float> fgrad = g;
      AdamState state;
      AdamConfig acfg;
      acfg.lr = 1e-3f;
      acfg.threshold_lr_scale = threshold_lr_scale;
      sae_apply_gradient(cpu_p, fgrad, state, acfg, unit);
      DeviceBuffer<float> dp, dg, dm(p.size()), dv(p.size());
      dp.upload(p.data, stream), dg.upload(g, stream);
      dm.zero(stream), dv.zero(stream);
      cuda::sae_apply_adam(cuda::SaeLayout{D, F}, dp.data(), dg.data(), dm.data(), dv.data(), 1, acfg.lr,
                           acfg.lr * threshold_lr_scale, acfg.beta1, acfg.beta2, acfg.eps, unit, stream);
      // tolerance 1e-3 of each parameter's own step: a threshold moved at the wrong rate is off by 0.9x
      std::vector<double> scale(cpu_p.data.size(), acfg.lr);
      for (int64_t f = 0; f < F; ++f) scale[size_t(p.off_log_threshold() + f)] = acfg.lr * threshold_lr_scale;
      expect_close(dp.download(stream), cpu_p.data, scale, 1e-3, "params after Adam");
    }
}

// ---------------------------------------------------------------- the training step

TrainStepConfig step_config(Architecture a, int64_t D, int64_t F, const std::string& precision, double clip) {
  TrainStepConfig c;
  c.d_in = D;
  c.d_sae = F;
  c.sae = config_for(a, 32);
  c.adam.beta1 = 0.9f;
  c.adam.beta2 = 0.999f;
  c.adam.eps = 6.25e-10f;
  c.grad_clip = clip;
  c.precision = precision;
  return c;
}

// `steps` steps on the batches of x (B rows each), from p, half the latents dead.
TrainRun train(TrainStep& step, const SaeParams& p, const std::vector<float>& x, int64_t B, int64_t D, int steps,
               const AdamState& start = {}) {
  std::vector<uint8_t> dead(static_cast<size_t>(p.d_sae), 0);
  for (int64_t f = 0; f < p.d_sae; f += 2) dead[f] = 1;
  const auto batch = [&](int s) {
    const int64_t off = (s * B) % (int64_t(x.size()) / D - B + 1);
    return StepBatch{x.data() + off * D, nullptr, 0, B, 0, 0, B};
  };
  return run_steps(step, p, start, 0, steps, batch, [&](int) { return dead; });
}

TEST_F(Cuda, TrainStepMatchesCpuStep) {
  const int64_t D = 48, F = 512, B = 256;
  const auto x = random_normal(size_t(4 * B * D), 61);
  MpiEnv env;
  for (Architecture a : {Architecture::TopK, Architecture::BatchTopK, Architecture::ReLU, Architecture::JumpReLU}) {
    SCOPED_TRACE(to_string(a));
    const SaeParams p = random_sae(D, F, 62, std::log(0.05f));
    const double clip = a == Architecture::ReLU ? 0.05 : 0.0;  // clipping exercised once
    const auto cpu = make_cpu_train_step(step_config(a, D, F, "fp32", clip), env);
    const auto gpu = cuda::make_cuda_train_step(step_config(a, D, F, "fp32", clip), env);
    const TrainRun want = train(*cpu, p, x, B, D, 4);
    const TrainRun got = train(*gpu, p, x, B, D, 4);
    for (size_t s = 0; s < want.totals.size(); ++s) {
      EXPECT_NEAR(got.totals[s].sum_sq_err, want.totals[s].sum_sq_err, 1e-4 * want.totals[s].sum_sq_err) << s;
      EXPECT_NEAR(got.totals[s].sum_x2, want.totals[s].sum_x2, 1e-9 * want.totals[s].sum_x2) << s;
      EXPECT_NEAR(got.totals[s].penalty, want.totals[s].penalty, 1e-4 * std::abs(want.totals[s].penalty) + 1e-12) << s;
      EXPECT_NEAR(got.totals[s].active, want.totals[s].active, 1e-3 * want.totals[s].active) << s;
    }
    EXPECT_EQ(got.adam.t, want.adam.t);
    // After 4 Adam steps of lr 1e-3: the weights within 1e-4 of the block's scale.
    expect_params_close(std::vector<double>(got.params.data.begin(), got.params.data.end()),
                        std::vector<double>(want.params.data.begin(), want.params.data.end()), p, 1e-4);
  }
}

// Stopped after 2 steps, its state read back into a fresh step, and 2 more: the same bits as
// 4 steps straight (what train_state.h5 relies on); and the same again when run twice.
TEST_F(Cuda, TrainStepResumesExactlyAndIsDeterministic) {
  const int64_t D = 48, F = 512, B = 256;
  const auto x = random_normal(size_t(4 * B * D), 51);
  const SaeParams p = random_sae(D, F, 52, std::log(0.05f));
  MpiEnv env;
  for (Architecture a : {Architecture::TopK, Architecture::BatchTopK}) {
    SCOPED_TRACE(to_string(a));
    const auto cfg = step_config(a, D, F, "bf16", 0.0);
    const auto s1 = cuda::make_cuda_train_step(cfg, env);
    const TrainRun straight = train(*s1, p, x, B, D, 4);
    const TrainRun again = train(*s1, p, x, B, D, 4);
    expect_bitwise(again.params.data, straight.params.data, "second run");
    const auto s2 = cuda::make_cuda_train_step(cfg, env);
    const TrainRun half = train(*s2, p, x, B, D, 2);
    const auto s3 = cuda::make_cuda_train_step(cfg, env);
    // The batches of steps 3 and 4 are those at offsets 2B and 3B.
    std::vector<float> rest(x.begin() + 2 * B * D, x.end());
    rest.insert(rest.end(), x.begin(), x.begin() + 2 * B * D);
    const TrainRun resumed = train(*s3, half.params, rest, B, D, 2, half.adam);
    expect_bitwise(resumed.params.data, straight.params.data, "resumed");
    expect_bitwise(resumed.adam.m, straight.adam.m, "Adam m");
    EXPECT_EQ(resumed.adam.t, straight.adam.t);
  }
}

// bf16 encoder GEMM: a few selections change; the loss after training stays close to fp32's.
TEST_F(Cuda, TrainStepBf16CloseToFp32) {
  const int64_t D = 64, F = 1024, B = 512;
  const auto x = random_normal(size_t(4 * B * D), 41);
  const SaeParams p = random_sae(D, F, 42, 0.0f);
  MpiEnv env;
  const auto f32 = cuda::make_cuda_train_step(step_config(Architecture::TopK, D, F, "fp32", 0.0), env);
  const auto b16 = cuda::make_cuda_train_step(step_config(Architecture::TopK, D, F, "bf16", 0.0), env);
  const TrainRun a = train(*f32, p, x, B, D, 4), b = train(*b16, p, x, B, D, 4);
  EXPECT_NEAR(b.totals.back().sum_sq_err, a.totals.back().sum_sq_err, 0.05 * a.totals.back().sum_sq_err);
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
  void start(double* data, int64_t n, void* stream) override {
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
  d.upload(v, stream);
  comm.start(d.data(), n, stream);
  // Another stream ordered after the sum reads the result.
  cudaStream_t s2;
  SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  comm.wait(s2);
  SAE_CUDA_CHECK(cudaMemcpyAsync(other.data(), d.data(), sizeof(float) * size_t(n), cudaMemcpyDeviceToDevice, s2));
  SAE_CUDA_CHECK(cudaStreamSynchronize(s2));
  std::vector<float> want(v);
  for (auto& e : want) e *= 3.0f;
  expect_bitwise(other.download(s2), want, "staged sum");
  cudaStreamDestroy(s2);
  // float64 too (the train step's buffer).
  std::vector<double> vd(v.begin(), v.end());
  DeviceBuffer<double> dd;
  dd.upload(vd, stream);
  comm.allreduce_sum(dd.data(), n, stream);
  for (auto& e : vd) e *= 3.0;
  expect_bitwise(dd.download(stream), vd, "staged float64 sum");
  comm.allreduce_sum(static_cast<float*>(nullptr), 0, stream);
}

TEST_F(Cuda, NcclCommSingleRank) {
  if (!cuda::have_nccl()) GTEST_SKIP() << "built without NCCL";
#ifdef SAEPIPE_HAVE_NCCL
  const int64_t n = 65537;
  const auto v = random_normal(size_t(n), 111);
  for (WireType wire : {WireType::Float32, WireType::BFloat16}) {
    cuda::NcclComm comm(0, 1, wire, [](void*, size_t) {});
    DeviceBuffer<float> d;
    d.upload(v, stream);
    comm.start(d.data(), n, stream);
    comm.wait(nullptr);
    SCOPED_TRACE(comm.describe());
    // One rank: the sum is the vector itself, rounded to bf16 on a bf16 wire.
    expect_bitwise(d.download(stream), wire == WireType::BFloat16 ? round_bf16(v) : v, "sum over one rank");
    std::vector<double> vd(v.begin(), v.end());
    DeviceBuffer<double> dd;
    dd.upload(vd, stream);
    comm.start(dd.data(), n, stream);
    comm.wait(nullptr);
    expect_bitwise(dd.download(stream), vd, "float64 sum over one rank");
  }
#endif
}

}  // namespace
}  // namespace saepipe
