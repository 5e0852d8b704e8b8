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

// Wall time (UseRealTime): the work runs on several threads.
BENCHMARK(BM_sgemm_peak)
    ->Args({4096, 768, 24576})
    ->Args({4096, 64, 512})
    ->Args({1024, 768, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_train_step)
    ->Args({768, 24576, 32, 4096, 0})
    ->Args({64, 512, 8, 4096, 0})
    ->Args({768, 24576, 32, 4096, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);
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
    ->MeasureProcessCPUTime()
    ->MinTime(2.0);

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
