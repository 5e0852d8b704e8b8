// The latent-sharded CUDA training step (pipeline/sae/cuda/train_step_sharded.cu) against the
// CPU sharded step (train_step_sharded.cpp) on the same grid: every rank of the test's world is
// one latent shard (1 rank: the 1 x 1 grid, which still runs the candidate merge and the float64
// reconstruction; under `mpirun -np 2`, as bench/gpu/run_all.sh runs it: the 1 x 2 grid, both
// ranks on one GPU, so the shard group's sums go through MPI and host memory). For topk,
// batchtopk, relu and jumprelu with AuxK over dead latents of every shard and gradient clipping:
// after one step the fire count of every latent equals the CPU's (the same selections: the exact
// global TopK and BatchTopK's threshold from every shard), the totals agree, and after 5 steps
// the gathered weights are within 1e-4 of the CPU's (relative to each block's largest value).
// The sharded CUDA step also matches the unsharded CUDA step holding every latent on each rank
// alone (within 1e-4: the grid does not change the result beyond rounding), and a run stopped
// after 2 steps and resumed through get_state / set_state ends bit-identical to a straight one.
// The stats stage's sharded FeaturePasses on the device (make_cuda_sharded_feature_passes) against
// the CPU's on the same grid: counts, histograms and example rows identical, floats within 1e-5.
// Without a CUDA device every test skips (run_all.sh counts a skip as a failure).
//
// Shape legend: B global batch, D d_in, F d_sae, S latent shards (= the world's ranks).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/cuda/train_step.hpp"
#include "pipeline/sae/latent_shard_state.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/train_step.hpp"
#include "pipeline/stats/cuda/feature_passes.hpp"
#include "pipeline/stats/feature_passes.hpp"
#include "tests/gpu/cuda_test_util.hpp"
#include "tests/gpu/stats_test_util.hpp"
#include "tests/gpu/step_test_util.hpp"

namespace saepipe {
namespace {

using namespace test;  // fixture, tolerances, random_normal, random_sae, run_steps

class CudaShards : public CudaStreamTest {};

constexpr int64_t B = 128, D = 32, F = 4 * kTrainEncoderCols;  // whole encoder blocks for S = 1, 2, 4
constexpr int kSteps = 5;
const Architecture kArchitectures[] = {Architecture::TopK, Architecture::BatchTopK, Architecture::ReLU,
                                       Architecture::JumpReLU};

TrainStepConfig config(Architecture a) {
  TrainStepConfig c;
  c.d_in = D;
  c.d_sae = F;
  c.sae.architecture = a;
  c.sae.k = 8;
  c.sae.auxk = 16;
  c.sae.auxk_coef = 1.0 / 32;
  c.sae.bandwidth = 0.05;  // wide, so many pre-activations fall in jumprelu's window
  c.grad_clip = 0.5;
  return c;
}

SaeParams initial(Architecture a) {  // thresholds: init_tied's 0 but for jumprelu
  return random_sae(D, F, 71, a == Architecture::JumpReLU ? std::log(0.05f) : 0.0f);
}

std::vector<uint8_t> dead_mask(int s) {  // changes between steps; every shard holds some
  std::vector<uint8_t> dead(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) dead[f] = (f + s) % 3 == 0;
  return dead;
}

// Steps [first, first + steps) of the run from `p`; every rank holds the whole batch (one data
// group: B is less than one encoder block).
TrainRun train(TrainStep& step, const SaeParams& p, const AdamState& start, const std::vector<float>& x, int first,
               int steps) {
  return run_steps(
      step, p, start, first, steps, [&](int s) { return StepBatch{x.data() + s * B * D, nullptr, 0, B, 0, 0, B}; },
      dead_mask);
}

const std::vector<float>& batches() {
  static const std::vector<float> x = random_normal(size_t(kSteps * B * D), 74);
  return x;
}

TEST_F(CudaShards, ShardedStepMatchesCpuShardedStep) {
  const MpiEnv world;
  ASSERT_EQ(F % (int64_t(world.size()) * kTrainEncoderCols), 0) << "run it on 1, 2 or 4 ranks";
  const LatentGrid grid(world, world.size());
  for (Architecture a : kArchitectures) {
    SCOPED_TRACE("grid " + grid.describe() + ", " + to_string(a));
    const auto cpu = make_cpu_sharded_train_step(config(a), grid);
    const auto gpu = cuda::make_cuda_sharded_train_step(config(a), grid);
    const TrainRun want = train(*cpu, initial(a), {}, batches(), 0, kSteps);
    const TrainRun got = train(*gpu, initial(a), {}, batches(), 0, kSteps);
    // Step 1 from the same weights: the same selections, so the same fire count per latent.
    EXPECT_EQ(got.fire[0], want.fire[0]);
    EXPECT_EQ(got.totals[0].active, want.totals[0].active);
    if (a == Architecture::BatchTopK)
      EXPECT_NEAR(got.totals[0].batch_threshold, want.totals[0].batch_threshold, 1e-5 * want.totals[0].batch_threshold);
    for (size_t s = 0; s < want.totals.size(); ++s) {
      const StepTotals &g = got.totals[s], &w = want.totals[s];
      EXPECT_NEAR(g.sum_sq_err, w.sum_sq_err, 1e-4 * w.sum_sq_err) << "step " << s;
      EXPECT_NEAR(g.aux_sq_err, w.aux_sq_err, 1e-4 * w.aux_sq_err + 1e-12) << "step " << s;
      EXPECT_NEAR(g.sum_x2, w.sum_x2, 1e-9 * w.sum_x2) << "step " << s;
      EXPECT_NEAR(g.penalty, w.penalty, 1e-4 * std::abs(w.penalty) + 1e-12) << "step " << s;
      EXPECT_NEAR(g.active, w.active, 1e-3 * w.active) << "step " << s;
      if (world.size() > 1) EXPECT_GT(g.comm_bytes, 0.0) << "step " << s;
      EXPECT_LE(g.comm_s, g.step_s) << "step " << s;
    }
    EXPECT_GT(want.totals[0].aux_sq_err, 0.0);  // AuxK ran
    EXPECT_EQ(got.adam.t, want.adam.t);
    expect_params_close(got.params.data, want.params.data, want.params, 1e-4, "cuda sharded vs cpu sharded");
    // The weights moved: a step that did nothing would also "match".
    double moved = 0;
    const SaeParams p0 = initial(a);
    for (int64_t i = 0; i < p0.size(); ++i) moved = std::max(moved, double(std::abs(want.params.data[i] - p0.data[i])));
    EXPECT_GT(moved, 1e-4);
    // gather_params: the whole dictionary on the shard group's rank 0, as get_state.
    SaeParams gathered;
    gpu->gather_params(gathered);
    if (grid.shard_group().is_root()) expect_bitwise(gathered.data, got.params.data, "gather_params");
  }
}

TEST_F(CudaShards, ShardedStepMatchesUnshardedCudaStep) {
  const MpiEnv world;
  const MpiEnv self(MPI_COMM_SELF);
  ASSERT_EQ(F % (int64_t(world.size()) * kTrainEncoderCols), 0) << "run it on 1, 2 or 4 ranks";
  const LatentGrid grid(world, world.size());
  for (Architecture a : kArchitectures) {
    SCOPED_TRACE("grid " + grid.describe() + ", " + to_string(a));
    const auto whole = cuda::make_cuda_train_step(config(a), self);
    const auto sharded = cuda::make_cuda_sharded_train_step(config(a), grid);
    const TrainRun want = train(*whole, initial(a), {}, batches(), 0, kSteps);
    const TrainRun got = train(*sharded, initial(a), {}, batches(), 0, kSteps);
    EXPECT_EQ(got.fire[0], want.fire[0]);
    expect_params_close(got.params.data, want.params.data, want.params, 1e-4, "cuda sharded vs cuda unsharded");
  }
}

TEST_F(CudaShards, ShardedStepResumesExactly) {
  const MpiEnv world;
  ASSERT_EQ(F % (int64_t(world.size()) * kTrainEncoderCols), 0) << "run it on 1, 2 or 4 ranks";
  const LatentGrid grid(world, world.size());
  for (Architecture a : {Architecture::TopK, Architecture::JumpReLU}) {
    SCOPED_TRACE("grid " + grid.describe() + ", " + to_string(a));
    const auto s1 = cuda::make_cuda_sharded_train_step(config(a), grid);
    const TrainRun straight = train(*s1, initial(a), {}, batches(), 0, 4);
    const auto s2 = cuda::make_cuda_sharded_train_step(config(a), grid);
    const TrainRun half = train(*s2, initial(a), {}, batches(), 0, 2);
    const auto s3 = cuda::make_cuda_sharded_train_step(config(a), grid);
    const TrainRun resumed = train(*s3, half.params, half.adam, batches(), 2, 2);
    expect_bitwise(resumed.params.data, straight.params.data, "resumed");
    expect_bitwise(resumed.adam.m, straight.adam.m, "Adam m");
    expect_bitwise(resumed.adam.v, straight.adam.v, "Adam v");
    EXPECT_EQ(resumed.adam.t, straight.adam.t);
    // This rank's own part (what the checkpoint writes) round-trips through set_local_state.
    SaeParams local;
    AdamState local_adam;
    s3->get_local_state(local, &local_adam);
    EXPECT_EQ(local.d_sae, F / grid.shards());
    s2->set_local_state(local, local_adam);
    SaeParams back;
    AdamState back_adam;
    s2->get_state(back, back_adam);
    expect_bitwise(back.data, straight.params.data, "set_local_state");
  }
}

// The stats passes of one latent shard (this rank's range of an SAE; batches of whole sequences,
// every rank of the one data group encoding all of them), for the inference selections.
TEST_F(CudaShards, ShardedFeaturePassesMatchCpuSharded) {
  const MpiEnv world;
  ASSERT_EQ(F % (int64_t(world.size()) * kTrainEncoderCols), 0) << "run it on 1, 2 or 4 ranks";
  const LatentGrid grid(world, world.size());
  const int64_t Fs = F / grid.shards(), L = 16, n = 8 * L, n_batches = 4;
  SaeParams whole = initial(Architecture::TopK);
  std::fill(whole.log_threshold(), whole.log_threshold() + F, std::log(0.2f));
  SaeParams p(D, Fs);
  take_latent_range(LatentRange{D, F, Fs, int64_t(grid.shard()) * Fs}, whole.data, p.data);
  const auto x = random_normal(size_t(n_batches * n * D), 75);
  const std::vector<int32_t> tokens = cycling_tokens(n_batches * n);
  const ExampleOptions opt = small_example_options();
  for (Architecture a : {Architecture::TopK, Architecture::ReLU, Architecture::JumpReLU}) {
    SCOPED_TRACE("grid " + grid.describe() + ", " + to_string(a));
    SaeConfig cfg;
    cfg.architecture = a;
    cfg.k = 8;
    cfg.auxk = 0;
    cfg.encoder_cols = kTrainEncoderCols;  // as the stats stage
    const auto cpu = make_cpu_sharded_feature_passes(p, cfg, 10, opt, grid);
    const PassOutputs want = run_feature_passes(*cpu, x, tokens, n_batches, n, L, D, world);
    const auto gpu = cuda::make_cuda_sharded_feature_passes(p, cfg, 10, opt, grid);
    const PassOutputs got = run_feature_passes(*gpu, x, tokens, n_batches, n, L, D, world);
    expect_same_pass_outputs(got, want);
    EXPECT_GT(want.recon_sse, 0.0);
    EXPECT_EQ(got.recon_tokens, n_batches * n);  // each token once, whatever the grid
    EXPECT_EQ(want.recon_tokens, n_batches * n);
  }
}

}  // namespace
}  // namespace saepipe
