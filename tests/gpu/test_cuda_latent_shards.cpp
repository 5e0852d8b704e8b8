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

namespace saepipe {
namespace {

using namespace test;  // fixture, tolerances, random_normal

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

SaeParams initial(Architecture a) {
  SaeParams p(D, F);
  init_tied(p, 71);
  const auto be = random_normal(size_t(F), 72, 0.05f), bd = random_normal(size_t(D), 73, 0.1f);
  std::copy(be.begin(), be.end(), p.b_enc());
  std::copy(bd.begin(), bd.end(), p.b_dec());
  if (a == Architecture::JumpReLU) std::fill(p.log_threshold(), p.log_threshold() + F, std::log(0.05f));
  return p;
}

std::vector<uint8_t> dead_mask(int s) {  // changes between steps; every shard holds some
  std::vector<uint8_t> dead(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) dead[f] = (f + s) % 3 == 0;
  return dead;
}

struct ShardRun {
  SaeParams params;
  AdamState adam;
  std::vector<StepTotals> totals;
  std::vector<std::vector<double>> fire;
};

// Steps [first, first + steps) of the run from `p`; every rank holds the whole batch (one data
// group: B is less than one encoder block).
ShardRun train(TrainStep& step, const SaeParams& p, const AdamState& start, const std::vector<float>& x, int first,
          int steps) {
  step.set_state(p, start);
  ShardRun r;
  for (int s = first; s < first + steps; ++s) {
    const std::vector<uint8_t> dead = dead_mask(s);
    const StepTotals& t = step.step(StepBatch{x.data() + s * B * D, nullptr, 0, B, 0, 0, B}, dead.data(),
                                    StepSchedule{1e-3f, 0.3, 0.05});
    r.totals.push_back(t);
    r.fire.emplace_back(t.fire, t.fire + F);
  }
  step.get_state(r.params, r.adam);
  return r;
}

// Per parameter block, on the block's scale.
void expect_params_close(const SaeParams& got, const SaeParams& want, double rtol, const char* what) {
  const int64_t offs[] = {want.off_W_encT(), want.off_b_enc(), want.off_W_dec(), want.off_b_dec(),
                          want.off_log_threshold(), want.size()};
  const char* names[] = {"W_encT", "b_enc", "W_dec", "b_dec", "log_threshold"};
  ASSERT_EQ(got.data.size(), want.data.size()) << what;
  for (int blk = 0; blk < 5; ++blk) {
    SCOPED_TRACE(std::string(what) + " " + names[blk]);
    std::vector<double> a(got.data.begin() + offs[blk], got.data.begin() + offs[blk + 1]);
    std::vector<double> b(want.data.begin() + offs[blk], want.data.begin() + offs[blk + 1]);
    double scale = 0.0;
    for (double v : b) scale = std::max(scale, std::abs(v));
    expect_close(a, b, std::vector<double>(b.size(), scale), rtol, names[blk]);
  }
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
    const ShardRun want = train(*cpu, initial(a), {}, batches(), 0, kSteps);
    const ShardRun got = train(*gpu, initial(a), {}, batches(), 0, kSteps);
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
    expect_params_close(got.params, want.params, 1e-4, "cuda sharded vs cpu sharded");
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
    const ShardRun want = train(*whole, initial(a), {}, batches(), 0, kSteps);
    const ShardRun got = train(*sharded, initial(a), {}, batches(), 0, kSteps);
    EXPECT_EQ(got.fire[0], want.fire[0]);
    expect_params_close(got.params, want.params, 1e-4, "cuda sharded vs cuda unsharded");
  }
}

TEST_F(CudaShards, ShardedStepResumesExactly) {
  const MpiEnv world;
  ASSERT_EQ(F % (int64_t(world.size()) * kTrainEncoderCols), 0) << "run it on 1, 2 or 4 ranks";
  const LatentGrid grid(world, world.size());
  for (Architecture a : {Architecture::TopK, Architecture::JumpReLU}) {
    SCOPED_TRACE("grid " + grid.describe() + ", " + to_string(a));
    const auto s1 = cuda::make_cuda_sharded_train_step(config(a), grid);
    const ShardRun straight = train(*s1, initial(a), {}, batches(), 0, 4);
    const auto s2 = cuda::make_cuda_sharded_train_step(config(a), grid);
    const ShardRun half = train(*s2, initial(a), {}, batches(), 0, 2);
    const auto s3 = cuda::make_cuda_sharded_train_step(config(a), grid);
    const ShardRun resumed = train(*s3, half.params, half.adam, batches(), 2, 2);
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
  std::vector<int32_t> tokens(size_t(n_batches * n));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i % 997);
  ExampleOptions opt;
  opt.top = 5;
  opt.interval_bins = 3;
  opt.interval_per_bin = 2;
  for (Architecture a : {Architecture::TopK, Architecture::ReLU, Architecture::JumpReLU}) {
    SCOPED_TRACE("grid " + grid.describe() + ", " + to_string(a));
    SaeConfig cfg;
    cfg.architecture = a;
    cfg.k = 8;
    cfg.auxk = 0;
    cfg.encoder_cols = kTrainEncoderCols;  // as the stats stage
    FeatureStats fs[2];
    FeatureExamples ex[2];
    double recon_sse[2] = {}, tokens_counted[2] = {};
    int i = 0;
    for (bool gpu : {false, true}) {
      auto passes = gpu ? cuda::make_cuda_sharded_feature_passes(p, cfg, 10, opt, grid)
                        : make_cpu_sharded_feature_passes(p, cfg, 10, opt, grid);
      std::vector<std::vector<int32_t>> kept_idx;  // the codes, as the scratch file keeps them
      std::vector<std::vector<float>> kept_val;
      std::vector<int64_t> widths;
      for (int64_t b = 0; b < n_batches; ++b) {
        const EncodedBatch eb = passes->encode(x.data() + b * n * D, tokens.data() + b * n, b * n, n, L);
        kept_idx.emplace_back(eb.idx, eb.idx + n * eb.width);
        kept_val.emplace_back(eb.val, eb.val + n * eb.width);
        widths.push_back(eb.width);
        passes->first_add(x.data() + b * n * D);
      }
      passes->first_reduce(world);
      ex[i].top = passes->top_examples(world);
      for (int64_t b = 0; b < n_batches; ++b)
        passes->second_add(EncodedBatch{b * n, n, L, tokens.data() + b * n, kept_idx[size_t(b)].data(),
                                        kept_val[size_t(b)].data(), widths[size_t(b)]});
      passes->second_reduce(world);
      ex[i].interval = passes->interval_examples(world);
      passes->finish(fs[i], 0.1, 0.02, {0.5, 0.9});
      recon_sse[i] = passes->recon().sums.value(0);
      tokens_counted[i] = double(passes->recon().n_tokens);
      ++i;
    }
    EXPECT_EQ(fs[1].fire_count, fs[0].fire_count);
    EXPECT_EQ(fs[1].hist_counts, fs[0].hist_counts);
    EXPECT_EQ(fs[1].dead, fs[0].dead);
    EXPECT_EQ(ex[1].top.row, ex[0].top.row);
    EXPECT_EQ(ex[1].interval.row, ex[0].interval.row);
    expect_close(fs[1].max_activation, fs[0].max_activation, {}, 1e-5, "max activation");
    expect_close(fs[1].mean_activation, fs[0].mean_activation, {}, 1e-5, "mean activation");
    expect_close(ex[1].top.activation, ex[0].top.activation, {}, 1e-5, "top activations");
    EXPECT_NEAR(recon_sse[1], recon_sse[0], 1e-5 * recon_sse[0]);
    EXPECT_GT(recon_sse[0], 0.0);
    EXPECT_EQ(tokens_counted[1], double(n_batches * n));  // each token once, whatever the grid
    EXPECT_EQ(tokens_counted[0], double(n_batches * n));
    int64_t fired = 0;
    for (int64_t c : fs[0].fire_count) fired += c;
    EXPECT_GT(fired, 0);
  }
}

}  // namespace
}  // namespace saepipe
