// saepipe's TopK train step timed the way bench/peers/ times eai-sparsify's and SAELens':
// the same in-memory batch every step, the wall time of each step, the loss of each step (it
// must fall: the step trains), and the measured sgemm peak of the step's encoder product.
// bench/report.py takes the median of the steps after the warm-up.
//
//   bench_step_timed --x FILE --d 768 --f 24576 --k 32 [--auxk 384 --auxk-coef 0.03125]
//                    [--dead-fraction 0.1] [--lr 1.63e-4] [--warmup 1] [--steps 5] --json OUT
//   bench_step_timed --sgemm N,D,F --json OUT      (only the sgemm peak, pre[N,F] = x[N,D] W_enc)
//
// FILE: float32 [batch, d], raw little-endian (the batch every implementation trains on).
// One step is what the train stage's TrainModel::step does on one rank: the gradient zeroed,
// sae_forward_backward (encoder rows in blocks of kTrainEncoderBlock and latents in blocks of
// kTrainEncoderCols, as the trainer passes them), the gradient to float, decoder-gradient
// projection + Adam + decoder renormalisation (sae_apply_gradient), and the dead-latent
// counters updated. Not included: the trainer's metrics record, its single-rank allreduce,
// gradient clipping (off by default) and the LR schedule (a constant lr here).
// The dead set: latent f is dead when (f * 997) mod 1000 < 1000 * fraction (bench/peers uses
// the same rule), held fixed over the steps (the trainer would revive a dead latent that
// fires) so that AuxK does the same work on every step for every implementation. The
// trainer's per-step dead-latent bookkeeping (since-fired counters) is still done.
//
// Shape legend: N tokens, D d_in, F d_sae, K k.
#include <CLI/CLI.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/stages/train_model.hpp"

namespace saepipe {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<float> read_batch(const std::string& path, int64_t D) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) user_error(path + ": cannot open");
  const auto bytes = int64_t(in.tellg());
  if (bytes <= 0 || bytes % int64_t(D * sizeof(float)) != 0)
    user_error(path + ": " + std::to_string(bytes) + " bytes is not a whole number of float32 rows of " +
               std::to_string(D));
  std::vector<float> x(size_t(bytes / sizeof(float)));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(x.data()), bytes);
  if (!in) user_error(path + ": short read");
  return x;
}

// Median GFLOP/s of `reps` encoder products pre[N,F] = x[N,D] * W_encT[F,D]^T after one warm-up.
double sgemm_peak_gflops(int64_t N, int64_t D, int64_t F, int reps) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> A(size_t(N * D)), B(size_t(F * D)), C(size_t(N * F));
  for (auto& v : A) v = nd(rng);
  for (auto& v : B) v = nd(rng);
  std::vector<double> gflops;
  for (int r = 0; r <= reps; ++r) {
    const double t0 = now_s();
    cpu::matmul(false, true, N, F, D, 1.0f, A.data(), D, B.data(), D, 0.0f, C.data(), F);
    const double dt = now_s() - t0;
    if (r > 0) gflops.push_back(2.0 * double(N) * double(D) * double(F) / dt * 1e-9);
  }
  std::sort(gflops.begin(), gflops.end());
  return gflops[gflops.size() / 2];
}

int run(int argc, char** argv) {
  std::string x_path, json_path;
  std::vector<int64_t> sgemm;
  int64_t D = 768, F = 24576, K = 32, auxk = 384;
  double auxk_coef = 1.0 / 32, dead_fraction = 0.0, lr = 1.63e-4;
  int warmup = 1, steps = 5;
  CLI::App app{"saepipe's TopK train step, timed step by step on one in-memory batch"};
  app.add_option("--x", x_path, "float32 [batch, d] raw file");
  app.add_option("--sgemm", sgemm, "only measure the sgemm peak at N,D,F")->delimiter(',')->expected(3);
  app.add_option("--d", D)->check(CLI::PositiveNumber);
  app.add_option("--f", F)->check(CLI::PositiveNumber);
  app.add_option("--k", K)->check(CLI::PositiveNumber);
  app.add_option("--auxk", auxk, "AuxK width (0: off)")->check(CLI::NonNegativeNumber);
  app.add_option("--auxk-coef", auxk_coef);
  app.add_option("--dead-fraction", dead_fraction)->check(CLI::Range(0.0, 1.0));
  app.add_option("--lr", lr);
  app.add_option("--warmup", warmup)->check(CLI::NonNegativeNumber);
  app.add_option("--steps", steps)->check(CLI::PositiveNumber);
  app.add_option("--json", json_path)->required();
  CLI11_PARSE(app, argc, argv);

  nlohmann::json out = {{"impl", "saepipe"}, {"threads", omp_get_max_threads()}};
  if (!sgemm.empty()) {
    out["sgemm"] = {{"n", sgemm[0]}, {"d", sgemm[1]}, {"f", sgemm[2]},
                    {"gflops", sgemm_peak_gflops(sgemm[0], sgemm[1], sgemm[2], 5)}};
  } else {
    if (x_path.empty()) user_error("bench_step_timed: --x FILE or --sgemm N,D,F is required");
    const std::vector<float> x = read_batch(x_path, D);
    const int64_t N = int64_t(x.size()) / D;
    SaeParams p(D, F);
    init_tied(p, 1);
    const auto mean = row_mean(x.data(), N, D);  // b_dec: the batch mean (sparsify's first step does the same)
    std::copy(mean.begin(), mean.end(), p.b_dec());
    SaeConfig cfg;
    cfg.k = K;
    cfg.auxk = auxk;
    cfg.auxk_coef = auxk_coef;
    cfg.encoder_block = kTrainEncoderBlock;
    cfg.encoder_cols = kTrainEncoderCols;
    AdamConfig adam;
    adam.lr = float(lr);
    AdamState opt;
    SaeWorkspace ws;
    std::vector<uint8_t> dead(size_t(F), 0);
    const int64_t per_mille = std::llround(dead_fraction * 1000);
    for (int64_t f = 0; f < F; ++f) dead[size_t(f)] = (f * 997) % 1000 < per_mille;
    std::vector<double> grad(size_t(p.size()));
    std::vector<float> gradf(size_t(p.size()));
    std::vector<int64_t> fire(static_cast<size_t>(F)), since_fired(static_cast<size_t>(F), 0);
    nlohmann::json seconds = nlohmann::json::array(), loss = nlohmann::json::array(),
                   n_dead = nlohmann::json::array();
    for (int s = 0; s < warmup + steps; ++s) {
      int64_t dead_now = 0;
      for (auto v : dead) dead_now += v;
      const double t0 = now_s();
      std::fill(grad.begin(), grad.end(), 0.0);
      std::fill(fire.begin(), fire.end(), 0);
      const SaeStepSums sums = sae_forward_backward(p, cfg, x.data(), N, N, dead.data(), grad.data(), fire.data(), ws);
      const int64_t P = p.size();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < P; ++i) gradf[size_t(i)] = float(grad[size_t(i)]);
      sae_apply_gradient(p, gradf, opt, adam);
      for (int64_t f = 0; f < F; ++f) since_fired[size_t(f)] = fire[size_t(f)] > 0 ? 0 : since_fired[size_t(f)] + N;
      seconds.push_back(now_s() - t0);
      // The trainer's loss: mean over tokens of ||x_hat - x||^2 (+ AuxK's term, reported apart).
      loss.push_back(sums.sum_sq_err / double(N));
      n_dead.push_back(dead_now);
    }
    out.update({{"d", D}, {"f", F}, {"k", K}, {"batch", N}, {"auxk", auxk}, {"auxk_coef", auxk_coef},
                {"dead_fraction", dead_fraction}, {"lr", lr}, {"warmup", warmup}, {"seconds", seconds},
                {"loss", loss}, {"n_dead", n_dead}, {"loss_name", "mean over tokens of ||x_hat - x||^2"}});
  }
  std::ofstream f(json_path);
  f << out.dump(1) << "\n";
  if (!f) user_error(json_path + ": cannot write");
  return 0;
}

}  // namespace
}  // namespace saepipe

int main(int argc, char** argv) {
  try {
    return saepipe::run(argc, argv);
  } catch (const saepipe::SaeError& e) {
    std::fprintf(stderr, "bench_step_timed: %s\n", e.what());
    return e.exit_code();
  }
}
