// CPU train-step throughput next to the sgemm peak that bounds it.
//
// Shape legend: N tokens, D d_in, F d_sae, K k.
//
// FLOP model of one TopK train step (the "GFLOPs" counter):
//   encoder sgemm          2*N*D*F   (dominant: 2*4096*768*24576 = 155 GFLOP at the big shape)
//   sparse decode          2*N*K*D
//   decoder backward       4*N*K*D   (dval dot products + W_dec row accumulation)
//   encoder backward       2*N*K*D   (W_encT row accumulation)
//   b_dec through xc       2*F*D
//   AuxK, when latents are dead: the same four sparse terms with A = min(auxk, #dead) for K.
// Not counted: top-k selection (N*F compares), element-wise work, and the optimiser
// (projection, Adam, renormalisation: ~15 flops per parameter, memory bound).
// The 5th benchmark argument is the dead fraction in per mille (0: AuxK idle, as at the
// start of training; 100: 10% dead, AuxK active with auxk = 256). BM_cpu_train_step is the
// same step through the train stage's CPU TrainStep.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/sae/topk_sae.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe {
namespace {

std::vector<float> random_normal(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

// pre[N,F] = xc[N,D] * W_encT[F,D]^T, the encoder product of a train step.
void BM_sgemm_peak(benchmark::State& state) {
  const int64_t N = state.range(0), D = state.range(1), F = state.range(2);
  const auto A = random_normal(size_t(N * D), 1);
  const auto B = random_normal(size_t(F * D), 2);
  std::vector<float> C(size_t(N * F));
  cpu::matmul(false, true, N, F, D, 1.0f, A.data(), D, B.data(), D, 0.0f, C.data(), F);  // warm
  for (auto _ : state) {
    cpu::matmul(false, true, N, F, D, 1.0f, A.data(), D, B.data(), D, 0.0f, C.data(), F);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * double(N * D * F) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One full step: forward + backward, gradient to float, projection + Adam + renormalise.
void BM_train_step(benchmark::State& state) {
  const int64_t D = state.range(0), F = state.range(1), K = state.range(2), N = state.range(3);
  const int64_t dead_per_mille = state.range(4);
  SaeParams p(D, F);
  init_tied(p, 1);
  const auto x = random_normal(size_t(N * D), 3);
  const auto med = row_mean(x.data(), N, D);
  std::copy(med.begin(), med.end(), p.b_dec());
  TopKConfig cfg;
  cfg.k = K;
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  int64_t n_dead = 0;
  for (int64_t f = 0; f < F; ++f)
    if ((f * 997) % 1000 < dead_per_mille) {  // spread over the latents
      dead[size_t(f)] = 1;
      ++n_dead;
    }
  const int64_t A = std::min(cfg.auxk, n_dead);
  AdamConfig adam;
  AdamState opt;
  SaeWorkspace ws;
  std::vector<double> grad(size_t(p.size()));
  std::vector<float> gradf(size_t(p.size()));
  std::vector<int64_t> fire(static_cast<size_t>(F));
  auto step = [&]() {
    std::fill(grad.begin(), grad.end(), 0.0);
    std::fill(fire.begin(), fire.end(), 0);
    sae_forward_backward(p, cfg, x.data(), N, N, dead.data(), grad.data(), fire.data(), ws);
    const int64_t n = p.size();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) gradf[size_t(i)] = float(grad[size_t(i)]);
    sae_apply_gradient(p, gradf, opt, adam);
  };
  step();  // first touch of the workspace and the Adam moments stays out of the timing
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  const double flops =
      2.0 * double(N * D * F) + 8.0 * double(N * (K + A) * D) + 2.0 * double(F * D);
  state.counters["tokens"] =
      benchmark::Counter(double(N), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The train stage's step as it runs it: the CPU TrainStep (pipeline/sae/train_step.hpp) with
// its float64 reduction buffer, one-rank allreduce, clipping check, gradient rounding and
// Adam, on the same batch and dead set as BM_train_step (which calls the same functions
// directly): the two should be within noise of each other.
void BM_cpu_train_step(benchmark::State& state) {
  const int64_t D = state.range(0), F = state.range(1), K = state.range(2), N = state.range(3);
  const int64_t dead_per_mille = state.range(4);
  SaeParams p(D, F);
  init_tied(p, 1);
  const auto x = random_normal(size_t(N * D), 3);
  const auto med = row_mean(x.data(), N, D);
  std::copy(med.begin(), med.end(), p.b_dec());
  std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  for (int64_t f = 0; f < F; ++f)
    if ((f * 997) % 1000 < dead_per_mille) dead[size_t(f)] = 1;
  TrainStepConfig cfg;
  cfg.d_in = D;
  cfg.d_sae = F;
  cfg.sae.k = K;
  const MpiEnv env;
  const SingleThreadedBlas one_blas_thread;  // as the train stage holds it
  const auto step = make_cpu_train_step(cfg, env);
  step->set_state(p, AdamState{});
  const StepBatch batch{x.data(), nullptr, 0, N, 0, 0, N};
  const StepSchedule schedule{2e-4f, 0.0};
  step->step(batch, dead.data(), schedule);  // first touch of the buffers stays out of the timing
  for (auto _ : state) {
    benchmark::DoNotOptimize(step->step(batch, dead.data(), schedule).sum_sq_err);
    benchmark::ClobberMemory();
  }
  state.counters["tokens"] = benchmark::Counter(double(N), benchmark::Counter::kIsIterationInvariantRate);
}

// One train step of each architecture (forward + backward + Adam, the functions the CPU
// TrainStep calls) at the same shape, for the variant table's "tokens/s next to TopK": read the
// ratios of one run. Arguments: architecture (the Architecture enum's order: topk, batchtopk,
// relu, jumprelu, matryoshka, gated), D, F, K, N. Weights as at a trained state's sparsity:
// relu and gated get b_enc = -t and jumprelu thresholds t, with t the (256 K)th largest encoder
// pre-activation over 256 rows of the batch, so about K latents fire per token as with TopK
// (at init half of them would, and the sparse backward would dominate). matryoshka uses its
// default prefixes (F/16 .. F). No latent is dead (AuxK idle, the same for every variant).
void BM_variant_step(benchmark::State& state) {
  const auto arch = Architecture(state.range(0));
  const int64_t D = state.range(1), F = state.range(2), K = state.range(3), N = state.range(4);
  SaeShape shape{D, F};
  shape.gated = arch == Architecture::Gated;
  SaeParams p(shape);
  init_tied(p, 1);
  const auto x = random_normal(size_t(N * D), 3);
  const auto mean = row_mean(x.data(), N, D);
  std::copy(mean.begin(), mean.end(), p.b_dec());
  SaeConfig cfg;
  cfg.architecture = arch;
  cfg.k = K;
  cfg.l1_coef = 1e-3;
  cfg.l0_coef = 1e-3;
  cfg.encoder_block = kTrainEncoderBlock;
  if (arch == Architecture::Matryoshka) cfg.prefixes = matryoshka_prefixes_in_force({}, F);
  if (arch == Architecture::ReLU || arch == Architecture::JumpReLU || arch == Architecture::Gated) {
    const int64_t R = std::min<int64_t>(N, 256);
    SaeParams plain(D, F);  // the common parameters (they lead the layout) for a ReLU forward
    std::copy(p.data.begin(), p.data.begin() + plain.size(), plain.data.begin());
    SaeConfig probe;
    probe.architecture = Architecture::ReLU;
    SaeWorkspace pw;
    sae_encode_decode(plain, probe, x.data(), R, pw);
    std::vector<float> vals(pw.pre.begin(), pw.pre.begin() + R * F);
    const float t = local_kth_largest(vals, R * K);
    if (arch == Architecture::JumpReLU)
      std::fill(p.log_threshold(), p.log_threshold() + F, std::log(t));
    else
      std::fill(p.b_enc(), p.b_enc() + F, -t);
  }
  const std::vector<uint8_t> dead(static_cast<size_t>(F), 0);
  AdamConfig adam;
  AdamState opt;
  SaeWorkspace ws;
  std::vector<double> grad(size_t(p.size()));
  std::vector<float> gradf(size_t(p.size()));
  double active = 0;
  auto step = [&]() {
    std::fill(grad.begin(), grad.end(), 0.0);
    active = sae_forward_backward(p, cfg, x.data(), N, N, dead.data(), grad.data(), nullptr, ws).sum_active;
    const int64_t n = p.size();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) gradf[size_t(i)] = float(grad[size_t(i)]);
    sae_apply_gradient(p, gradf, opt, adam, unit_norm_decoder(arch));
  };
  step();  // first touch of the workspace and the Adam moments stays out of the timing
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  state.SetLabel(to_string(arch));
  state.counters["tokens"] = benchmark::Counter(double(N), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["L0"] = active / double(N);
}

// Wall time (UseRealTime): the work runs on several threads. The minimum time per benchmark is
// --benchmark_min_time's (bench/report.py passes 2 s, 0.5 s with --quick).
// {1024, 768, 64}: one of the four encoder calls of the data-bound step below (the train stage
// computes the encoder in blocks of 1024 rows), so 4x its time bounds that step from below.
BENCHMARK(BM_sgemm_peak)
    ->Args({4096, 768, 24576})
    ->Args({4096, 64, 512})
    ->Args({1024, 768, 4096})
    ->Args({1024, 768, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_train_step)
    ->Args({768, 24576, 32, 4096, 0})
    ->Args({64, 512, 8, 4096, 0})
    ->Args({768, 24576, 32, 4096, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
// {768, 64, 4, ...}: bench_io's data-bound train step, where the host work that does not scale
// with d_sae shows. The CPU column is the process's (all threads): on a loaded machine it moves
// less than the wall time.
BENCHMARK(BM_cpu_train_step)
    ->Args({768, 24576, 32, 4096, 0})
    ->Args({64, 512, 8, 4096, 0})
    ->Args({768, 24576, 32, 4096, 100})
    ->Args({768, 64, 4, 4096, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK(BM_variant_step)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {768}, {24576}, {32}, {4096}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace saepipe

// MPI (one rank) for the TrainStep's MpiEnv.
int main(int argc, char** argv) {
  saepipe::MpiSession mpi(&argc, &argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
