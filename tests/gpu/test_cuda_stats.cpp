// The stats passes on the GPU (pipeline/stats/cuda/feature_passes.hpp) against FirstPass / SecondPass
// (pipeline/stats/feature_passes.hpp) on the same codes: counts, sums, maxima, histograms,
// quantiles and flags must be identical, bit for bit, after the reductions (one rank here; the
// multi-rank case runs in bench/gpu/run_all.sh). The example selections are compared, also bit
// for bit, with a plain reference of ExampleSelection's rule (per group the `slots` best by
// priority desc, row asc; contexts from EncodedBatch::context) and with the CPU's merge. Then
// the stage's FeaturePasses of the CUDA backend (encoder on the device) against the CPU's.
// Without a CUDA device every test skips (GTEST_SKIP).
//
// Shape legend: n tokens per batch, W slots per token, D d_in, F d_sae, L sequence length.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "pipeline/core/counter_rng.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/stats/cuda/feature_passes.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/stats/feature_passes.hpp"
#include "tests/gpu/cuda_test_util.hpp"
#include "tests/gpu/stats_test_util.hpp"

namespace saepipe {
namespace {

using cuda::DeviceBuffer;

class CudaStats : public test::CudaStreamTest {};

struct HostBatch {
  int64_t first_row, n;
  std::vector<int32_t> tokens, idx;
  std::vector<float> val, x, recon;
  EncodedBatch eb(int64_t L, int64_t W) const {
    return EncodedBatch{first_row, n, L, tokens.data(), idx.data(), val.data(), W};
  }
};

// Codes like a TopK SAE's, with many ties (values on a grid of 0.25), empty slots, a few
// zero activations on real latents, and latents that never fire.
std::vector<HostBatch> random_batches(int64_t n_batches, int64_t n, int64_t W, int64_t F, int64_t D, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, 999), lat(0, int32_t(F - 6));  // the last 5 stay dead
  std::uniform_int_distribution<int> grid(0, 16);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<HostBatch> out;
  for (int64_t b = 0; b < n_batches; ++b) {
    HostBatch h{b * n, n, {}, {}, {}, {}, {}};
    for (int64_t t = 0; t < n; ++t) {
      h.tokens.push_back(tok(rng));
      std::vector<int32_t> used;
      for (int64_t j = 0; j < W; ++j) {
        int32_t f = lat(rng);
        const int g = grid(rng);
        if (g == 0 || std::find(used.begin(), used.end(), f) != used.end()) f = -1;  // empty slot
        used.push_back(f);
        h.idx.push_back(f);
        h.val.push_back(f < 0 ? 0.0f : g == 1 ? 0.0f : 0.25f * float(g));
      }
    }
    for (int64_t i = 0; i < n * D; ++i) {
      h.x.push_back(normal(rng));
      h.recon.push_back(h.x.back() + 0.1f * normal(rng));
    }
    out.push_back(std::move(h));
  }
  return out;
}

// ExampleSelection's rule, plainly: every offer kept, sorted, cut.
struct Offer {
  double prio;
  int64_t row;
  float act;
  int32_t f;
  size_t batch;
};
ExampleSet reference_selection(std::vector<std::vector<Offer>>& groups, int64_t slots, int64_t groups_per_feature,
                               int64_t before, int64_t after, const std::vector<HostBatch>& batches, int64_t L,
                               int64_t W) {
  const int64_t G = int64_t(groups.size()), Cx = before + 1 + after;
  ExampleSet out;
  out.per_feature = groups_per_feature * slots;
  out.row.assign(size_t(G * slots), -1);
  out.activation.assign(size_t(G * slots), 0.0f);
  out.ctx_tokens.assign(size_t(G * slots * Cx), -1);
  out.ctx_acts.assign(size_t(G * slots * Cx), 0.0f);
  for (int64_t g = 0; g < G; ++g) {
    auto& o = groups[size_t(g)];
    std::sort(o.begin(), o.end(), [](const Offer& a, const Offer& b) {
      return a.prio > b.prio || (a.prio == b.prio && a.row < b.row);
    });
    for (int64_t j = 0; j < slots && j < int64_t(o.size()); ++j) {
      const size_t i = size_t(g * slots + j);
      out.row[i] = o[size_t(j)].row;
      out.activation[i] = o[size_t(j)].act;
      const EncodedBatch eb = batches[o[size_t(j)].batch].eb(L, W);
      eb.context(o[size_t(j)].row, o[size_t(j)].f, before, after, out.ctx_tokens.data() + int64_t(i) * Cx,
                 out.ctx_acts.data() + int64_t(i) * Cx);
    }
  }
  return out;
}

int64_t host_bin_of(float a, float hi, int64_t B) {  // feature_passes.cpp's bin_of
  return std::min<int64_t>(B - 1, int64_t(double(a) / double(hi) * double(B)));
}

void expect_same_examples(const ExampleSet& got, const ExampleSet& want, const char* what) {
  EXPECT_EQ(got.per_feature, want.per_feature) << what;
  EXPECT_EQ(got.row, want.row) << what;
  EXPECT_EQ(got.activation, want.activation) << what;
  EXPECT_EQ(got.ctx_tokens, want.ctx_tokens) << what;
  EXPECT_EQ(got.ctx_acts, want.ctx_acts) << what;
}

TEST_F(CudaStats, PassesMatchCpuBitForBit) {
  const int64_t n_batches = 5, L = 16, n = 4 * L, W = 8, F = 60, D = 24, H = 12;
  ExampleOptions opt;
  opt.top = 7;
  opt.interval_bins = 4;
  opt.interval_per_bin = 3;
  opt.before = 5;
  opt.after = 2;
  opt.seed = 99;
  const std::vector<double> levels = {0.1, 0.5, 0.9, 0.99};
  const auto batches = random_batches(n_batches, n, W, F, D, 5);

  // CPU: the stage's classes.
  FirstPass fp(D, F, opt);
  for (const auto& b : batches) fp.add(b.eb(L, W), b.x.data(), b.recon.data());
  FeatureStats want;
  fp.finish(want, 0.1, 0.02);
  SecondPass sp(fp.max_activation(), H, opt);
  for (const auto& b : batches) sp.add(b.eb(L, W));
  sp.finish(want, levels);

  // GPU.
  MpiEnv env;
  fp.reduce(env);  // one rank: changes nothing, but the GPU's totals come through the same path
  cuda::CudaFeaturePasses gp(D, F, H, opt, stream);
  std::vector<DeviceBuffer<int32_t>> tok(batches.size()), idx(batches.size());
  std::vector<DeviceBuffer<float>> val(batches.size()), x(batches.size()), rec(batches.size());
  std::vector<cuda::DeviceCodes> codes;
  for (size_t i = 0; i < batches.size(); ++i) {
    tok[i].upload(batches[i].tokens, stream), idx[i].upload(batches[i].idx, stream), val[i].upload(batches[i].val, stream);
    x[i].upload(batches[i].x, stream), rec[i].upload(batches[i].recon, stream);
    codes.push_back({batches[i].first_row, n, L, tok[i].data(), idx[i].data(), val[i].data(), W});
  }
  for (size_t i = 0; i < batches.size(); ++i) gp.first_add(codes[i], x[i].data(), rec[i].data(), stream);
  gp.first_reduce(env, stream);
  EXPECT_EQ(gp.max_activation(), fp.max_activation());
  for (size_t i = 0; i < batches.size(); ++i) gp.second_add(codes[i], stream);
  gp.second_reduce(env, stream);
  FeatureStats got;
  gp.finish_first(got, 0.1, 0.02);
  gp.finish_second(got, levels);

  EXPECT_EQ(got.n_tokens, want.n_tokens);
  EXPECT_EQ(got.fire_count, want.fire_count);
  EXPECT_EQ(got.density, want.density);
  EXPECT_EQ(got.log10_density, want.log10_density);
  EXPECT_EQ(got.max_activation, want.max_activation);
  EXPECT_EQ(got.mean_activation, want.mean_activation);
  EXPECT_EQ(got.dead, want.dead);
  EXPECT_EQ(got.dense, want.dense);
  EXPECT_EQ(got.ultralow, want.ultralow);
  EXPECT_EQ(got.hist_counts, want.hist_counts);
  EXPECT_EQ(got.quantiles, want.quantiles);
  EXPECT_EQ(got.density_hist_edges, want.density_hist_edges);
  EXPECT_EQ(got.density_hist_counts, want.density_hist_counts);
  int dead = 0;
  for (auto d : want.dead) dead += d;
  EXPECT_GE(dead, 5);  // the test does exercise dead latents

  for (int64_t i = 0; i < 4 + D; ++i)
    EXPECT_EQ(gp.recon().sums.value(size_t(i)), fp.recon().sums.value(size_t(i))) << "sum " << i;
  EXPECT_EQ(gp.recon().n_tokens, fp.recon().n_tokens);
  expect_same_examples(gp.top_examples(env, stream), fp.top_examples(env), "top, against the CPU's merge");

  // Examples against the rule.
  std::vector<std::vector<Offer>> top(static_cast<size_t>(F)), interval(static_cast<size_t>(F * opt.interval_bins));
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    const auto& b = batches[bi];
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < W; ++j) {
        const int32_t f = b.idx[size_t(t * W + j)];
        const float v = b.val[size_t(t * W + j)];
        if (f < 0 || !(v > 0.0f)) continue;
        const int64_t row = b.first_row + t;
        top[size_t(f)].push_back({double(v), row, v, f, bi});
        const float hi = fp.max_activation()[size_t(f)];
        const double prio = -uniform01(counter_hash(opt.seed, 0x1A7E5A11ull, uint64_t(f), uint64_t(row)));
        interval[size_t(f * opt.interval_bins + host_bin_of(v, hi, opt.interval_bins))].push_back({prio, row, v, f, bi});
      }
  }
  expect_same_examples(gp.top_examples(env, stream),
                       reference_selection(top, opt.top, 1, opt.before, opt.after, batches, L, W), "top");
  expect_same_examples(gp.interval_examples(env, stream),
                       reference_selection(interval, opt.interval_per_bin, opt.interval_bins, opt.before, opt.after,
                                           batches, L, W),
                       "interval");
}

// The stage's FeaturePasses of the CUDA backend (the encoder on the device, fp32) against the
// CPU's on the same SAE and rows, for the inference configurations stats uses: the same codes
// where no pre-activation sits within rounding of a threshold (random data: none), so the
// counts are identical and the float outputs within tolerance; the codes read back from the
// scratch file (host codes) give the second pass the same results as fresh ones.
TEST_F(CudaStats, FeaturePassesMatchCpu) {
  const int64_t D = 48, F = 256, L = 16, n = 8 * L, n_batches = 4;
  SaeParams p(D, F);
  init_tied(p, 3);
  std::mt19937_64 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t f = 0; f < F; ++f) p.b_enc()[f] = 0.05f * normal(rng) - 0.1f;
  for (int64_t d = 0; d < D; ++d) p.b_dec()[d] = 0.1f * normal(rng);
  std::fill(p.log_threshold(), p.log_threshold() + F, std::log(0.2f));
  std::vector<float> x(size_t(n_batches * n * D));
  for (auto& v : x) v = normal(rng);
  const std::vector<int32_t> tokens = test::cycling_tokens(n_batches * n);
  const ExampleOptions opt = test::small_example_options();
  MpiEnv env;
  for (Architecture a : {Architecture::TopK, Architecture::ReLU, Architecture::JumpReLU}) {
    SCOPED_TRACE(to_string(a));
    SaeConfig cfg;
    cfg.architecture = a;
    cfg.k = 8;
    cfg.auxk = 0;
    const auto cpu = make_cpu_feature_passes(p, cfg, 10, opt);
    const test::PassOutputs want = test::run_feature_passes(*cpu, x, tokens, n_batches, n, L, D, env);
    const auto gpu = cuda::make_cuda_feature_passes(p, cfg, 10, opt);
    test::expect_same_pass_outputs(test::run_feature_passes(*gpu, x, tokens, n_batches, n, L, D, env), want);
  }
}

}  // namespace
}  // namespace saepipe
