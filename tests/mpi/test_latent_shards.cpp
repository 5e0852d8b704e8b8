// The latent-sharded CPU training step (pipeline/sae/train_step_sharded.cpp) against the
// unsharded one, under 1-4 ranks: every grid the rank count allows (np 2: 1x2; np 3: 1x3;
// np 4: 2x2 and 1x4), every architecture (matryoshka, gated and the dictionary kinds —
// transcoders with and without the skip, a crosscoder — on the first grid of each rank count:
// 1x2, 1x3, 2x2), with AuxK over dead latents of every shard, gradient
// clipping, and a batch whose rows are split over the data groups. The reference is the
// unsharded step on each rank alone (MPI_COMM_SELF) holding the whole batch; after several
// steps the sharded weights (gathered by get_state) are within 1e-5 relative of it, and so are
// the step's totals. A sharded run saved and resumed (get_state / set_state into a new step)
// ends bit-identical to an uninterrupted one. (Without the encoder's latent blocks,
// kTrainEncoderCols, BLAS rounds the narrower shard GEMMs differently, and selections flip.)
//
// Shape legend: B global batch, D d_in, F d_sae, S latent shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe {
namespace {

constexpr int64_t B = 96, D = 16, F = 12 * kTrainEncoderCols;  // whole encoder blocks for S = 2, 3, 4

// An architecture and a dictionary kind: d_out > 0 is a transcoder writing d_out; layers > 1 a
// crosscoder (D = layers x its hooks' width).
struct Variant {
  const char* name;
  Architecture arch;
  int64_t d_out = 0;
  bool skip = false;
  int64_t layers = 1;
  bool every_grid = true;  // false: the first grid of the rank count only (CI time; np 4: 2x2)
};

// The global batch of step `s`: sparse non-negative mixtures of a few directions plus noise,
// so that latents compete and some stay dead. The same on every rank.
std::vector<float> batch(int s) {
  std::mt19937_64 rng(1000 + uint64_t(s));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> dirs(size_t(8 * D));
  std::mt19937_64 fixed(7);
  for (auto& v : dirs) v = normal(fixed);
  std::vector<float> x(size_t(B * D));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int64_t n = 0; n < B; ++n)
    for (int j = 0; j < 8; ++j) {
      const float a = u(rng) < 0.3f ? 2.0f * u(rng) : 0.0f;
      for (int64_t d = 0; d < D; ++d) x[n * D + d] += a * dirs[j * D + d] + 0.05f * normal(rng);
    }
  return x;
}

TrainStepConfig config(const Variant& v) {
  const Architecture arch = v.arch;
  TrainStepConfig c;
  c.d_in = D;
  c.d_sae = F;
  c.d_out = v.d_out > 0 ? v.d_out : D;
  c.transcoder = v.d_out > 0;
  c.skip = v.skip;
  c.layers = v.layers;
  c.sae.architecture = arch;
  c.sae.k = 4;
  c.sae.auxk = 6;
  c.sae.auxk_coef = 1.0 / 32;
  c.sae.l0_coef = 0.01;
  c.sae.bandwidth = 0.05;
  c.grad_clip = 0.5;
  // Prefix bounds inside the shards of every grid (S = 2, 3, 4: 1536, 1024, 768 latents each).
  if (arch == Architecture::Matryoshka) c.sae.prefixes = {100, 700, 1600, 2500, F};
  return c;
}

SaeParams initial(const Variant& v) {
  SaeParams p(config(v).shape());
  init_tied(p, 11);
  if (v.arch == Architecture::JumpReLU) std::fill(p.log_threshold(), p.log_threshold() + F, std::log(0.2f));
  for (int64_t d = 0; d < p.d_out; ++d) p.b_dec()[d] = 0.01f * float(d);
  return p;
}

// A transcoder's target rows [B, O]: a fixed linear map of x plus noise (empty for the others).
std::vector<float> target(const Variant& v, const std::vector<float>& x, int s) {
  if (v.d_out == 0) return {};
  const int64_t O = v.d_out;
  std::mt19937_64 fixed(9), rng(2000 + uint64_t(s));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> A(size_t(O * D)), y(size_t(B * O));
  for (auto& a : A) a = 0.3f * normal(fixed);
  for (int64_t n = 0; n < B; ++n)
    for (int64_t o = 0; o < O; ++o) {
      float acc = 0.02f * normal(rng);
      for (int64_t d = 0; d < D; ++d) acc += A[o * D + d] * x[n * D + d];
      y[n * O + o] = acc;
    }
  return y;
}

std::vector<uint8_t> dead_mask(int s) {  // changes between steps; every shard holds some
  std::vector<uint8_t> dead(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) dead[f] = (f + s) % 3 == 0;
  return dead;
}

StepSchedule schedule() {
  StepSchedule s;
  s.lr = 0.01f;
  s.l1_coef = 0.05;
  return s;
}

// This rank's rows of the global batch on `grid` (as the train stage: the data group's slice).
// y: a transcoder's target rows of the whole batch [B, O] (empty: none).
StepBatch rows(const LatentGrid& grid, const std::vector<float>& x, const std::vector<float>& y = {}) {
  const int64_t g = grid.data_group_index(), G = grid.data_groups();
  const int64_t lo = B * g / G, hi = B * (g + 1) / G;
  const float* own_y = y.empty() ? nullptr : y.data() + lo * int64_t(y.size() / size_t(B));
  // B is less than one encoder block: the block is the whole batch, the other rows lead/tail.
  return StepBatch{x.data(), own_y, lo, hi - lo, B - hi, lo, B};
}

double max_rel(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 1e-30;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(a[i])));
  }
  return diff / scale;
}

const Variant kVariants[] = {{"topk", Architecture::TopK},
                             {"batchtopk", Architecture::BatchTopK},
                             {"relu", Architecture::ReLU},
                             {"jumprelu", Architecture::JumpReLU},
                             {"matryoshka", Architecture::Matryoshka, 0, false, 1, false},
                             {"gated", Architecture::Gated, 0, false, 1, false},
                             {"transcoder+skip", Architecture::BatchTopK, 12, true, 1, false},
                             {"transcoder", Architecture::JumpReLU, 12, false, 1, false},
                             {"crosscoder", Architecture::ReLU, 0, false, 2, false}};

TEST(LatentShards, ShardedStepMatchesUnshardedForEveryArchitectureAndGrid) {
  const MpiEnv world;
  const MpiEnv self(MPI_COMM_SELF);
  int grids = 0;
  for (int S = 2; S <= world.size(); ++S) {
    if (world.size() % S != 0 || F % S != 0) continue;
    ++grids;
    const LatentGrid grid(world, S);
    for (const Variant& v : kVariants) {
      if (!v.every_grid && grids > 1) continue;
      SCOPED_TRACE("grid " + grid.describe() + ", " + v.name);
      auto ref = make_cpu_train_step(config(v), self);
      auto sharded = make_cpu_sharded_train_step(config(v), grid);
      ref->set_state(initial(v), AdamState{});
      sharded->set_state(initial(v), AdamState{});
      constexpr int kSteps = 6;
      for (int s = 0; s < kSteps; ++s) {
        const std::vector<float> x = batch(s), y = target(v, x, s);
        const std::vector<uint8_t> dead = dead_mask(s);
        const StepTotals r =
            ref->step(StepBatch{x.data(), y.empty() ? nullptr : y.data(), 0, B, 0, 0, B}, dead.data(), schedule());
        const std::vector<double> ref_fire(r.fire, r.fire + F);
        const double ref_sse = r.sum_sq_err, ref_active = r.active, ref_aux = r.aux_sq_err, ref_x2 = r.sum_x2;
        const double ref_pen = r.penalty;
        const StepTotals& t = sharded->step(rows(grid, x, y), dead.data(), schedule());
        EXPECT_NEAR(t.sum_sq_err, ref_sse, 1e-5 * ref_sse) << "step " << s;
        EXPECT_NEAR(t.aux_sq_err, ref_aux, 1e-5 * ref_aux + 1e-12) << "step " << s;
        EXPECT_NEAR(t.sum_x2, ref_x2, 1e-9 * ref_x2) << "step " << s;
        EXPECT_NEAR(t.penalty, ref_pen, 1e-5 * std::fabs(ref_pen) + 1e-12) << "step " << s;
        EXPECT_EQ(t.active, ref_active) << "step " << s;
        for (int64_t f = 0; f < F; ++f) EXPECT_EQ(t.fire[f], ref_fire[f]) << "latent " << f << " step " << s;
        EXPECT_GT(t.comm_bytes, 0.0);
        EXPECT_LE(t.comm_s, t.step_s);
        EXPECT_NEAR(t.batch_threshold, r.batch_threshold, 1e-5 * r.batch_threshold) << "step " << s;
      }
      SaeParams want, got;
      AdamState want_adam, got_adam;
      ref->get_state(want, want_adam);
      sharded->get_state(got, got_adam);
      ASSERT_EQ(got.data.size(), want.data.size());
      EXPECT_EQ(got_adam.t, want_adam.t);
      struct Part {
        const char* name;
        int64_t off, n;
      };
      std::vector<Part> parts = {{"W_encT", want.off_W_encT(), F * D},
                                 {"b_enc", want.off_b_enc(), F},
                                 {"W_dec", want.off_W_dec(), F * want.d_out},
                                 {"b_dec", want.off_b_dec(), want.d_out},
                                 {"log_threshold", want.off_log_threshold(), F}};
      if (want.gated) parts.insert(parts.end(), {{"r_mag", want.off_r_mag(), F}, {"b_mag", want.off_b_mag(), F}});
      if (want.skip) parts.push_back({"W_skip", want.off_W_skip(), want.d_out * D});
      for (const auto& p : parts) {
        const double rel = max_rel(want.data.data() + p.off, got.data.data() + p.off, p.n);
        EXPECT_LE(rel, 1e-5) << p.name;
        if (world.is_root()) std::printf("  grid %s %-15s %-13s max relative difference %.3g\n", grid.describe().c_str(),
                                         v.name, p.name, rel);
      }
      // The weights must have moved: a step that did nothing would also "match".
      EXPECT_GT(max_rel(want.data.data(), initial(v).data.data(), want.size()), 1e-3);
      if (want.skip) EXPECT_GT(max_rel(want.W_skip(), initial(v).W_skip(), want.d_out * D), 0.5);  // W_skip starts at 0
    }
  }
  if (world.is_root()) std::printf("  %d grid(s) for %d rank(s)\n", grids, world.size());
}

TEST(LatentShards, ResumeOnTheSameGridIsBitIdentical) {
  const MpiEnv world;
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const LatentGrid grid(world, world.size() % 2 == 0 ? 2 : world.size());
  for (const Variant& v : {kVariants[0], kVariants[3], kVariants[5], kVariants[6]}) {
    SCOPED_TRACE(v.name);
    auto whole = make_cpu_sharded_train_step(config(v), grid);
    auto first = make_cpu_sharded_train_step(config(v), grid);
    whole->set_state(initial(v), AdamState{});
    first->set_state(initial(v), AdamState{});
    for (int s = 0; s < 3; ++s) {
      const std::vector<float> x = batch(s), y = target(v, x, s);
      whole->step(rows(grid, x, y), dead_mask(s).data(), schedule());
      first->step(rows(grid, x, y), dead_mask(s).data(), schedule());
    }
    SaeParams saved;
    AdamState saved_adam;
    first->get_state(saved, saved_adam);
    auto second = make_cpu_sharded_train_step(config(v), grid);
    second->set_state(saved, saved_adam);
    for (int s = 3; s < 6; ++s) {
      const std::vector<float> x = batch(s), y = target(v, x, s);
      whole->step(rows(grid, x, y), dead_mask(s).data(), schedule());
      second->step(rows(grid, x, y), dead_mask(s).data(), schedule());
    }
    SaeParams a, b;
    AdamState am, bm;
    whole->get_state(a, am);
    second->get_state(b, bm);
    EXPECT_TRUE(a.data == b.data) << "parameters differ after resume";
    EXPECT_TRUE(am.m == bm.m && am.v == bm.v && am.t == bm.t) << "Adam state differs after resume";
  }
}

}  // namespace
}  // namespace saepipe
