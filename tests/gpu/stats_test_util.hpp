// Shared by the CUDA stats tests (test_cuda_stats.cpp, test_cuda_latent_shards.cpp): the stats
// stage's two passes driven over a few batches, and a device run's outputs against the CPU's.
//
// Shape legend: n rows per batch (whole sequences of L), D d_in.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/stats/feature_passes.hpp"
#include "tests/gpu/cuda_test_util.hpp"

namespace saepipe::test {

// Tokens 0, 1, ..., 996, 0, 1, ... [n].
inline std::vector<int32_t> cycling_tokens(int64_t n) {
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i % 997);
  return tokens;
}

// Few examples, so that ties and cuts matter: the top 5, 3 interval bins of 2.
inline ExampleOptions small_example_options() {
  ExampleOptions opt;
  opt.top = 5;
  opt.interval_bins = 3;
  opt.interval_per_bin = 2;
  return opt;
}

struct PassOutputs {
  FeatureStats stats;
  FeatureExamples examples;
  double recon_sse = 0;
  int64_t recon_tokens = 0;  // tokens the reconstruction metrics counted
};

// Batch b is rows [b n, b n + n) of x [n_batches n, D] and tokens; pass 2 runs on the codes
// copied out of pass 1, as the scratch file keeps them; `env` the reductions' ranks. finish
// with hist_bins as made, dense 0.1, ultra-low 0.02, quantiles 0.5 and 0.9.
inline PassOutputs run_feature_passes(FeaturePasses& passes, const std::vector<float>& x,
                                      const std::vector<int32_t>& tokens, int64_t n_batches, int64_t n, int64_t L,
                                      int64_t D, const MpiEnv& env) {
  PassOutputs out;
  std::vector<std::vector<int32_t>> kept_idx;
  std::vector<std::vector<float>> kept_val;
  std::vector<int64_t> widths;
  for (int64_t b = 0; b < n_batches; ++b) {
    const EncodedBatch eb = passes.encode(x.data() + b * n * D, tokens.data() + b * n, b * n, n, L);
    kept_idx.emplace_back(eb.idx, eb.idx + n * eb.width);
    kept_val.emplace_back(eb.val, eb.val + n * eb.width);
    widths.push_back(eb.width);
    passes.first_add(x.data() + b * n * D);
  }
  passes.first_reduce(env);
  out.examples.top = passes.top_examples(env);
  for (int64_t b = 0; b < n_batches; ++b)
    passes.second_add(EncodedBatch{b * n, n, L, tokens.data() + b * n, kept_idx[size_t(b)].data(),
                                   kept_val[size_t(b)].data(), widths[size_t(b)]});
  passes.second_reduce(env);
  out.examples.interval = passes.interval_examples(env);
  passes.finish(out.stats, 0.1, 0.02, {0.5, 0.9});
  out.recon_sse = passes.recon().sums.value(0);
  out.recon_tokens = passes.recon().n_tokens;
  return out;
}

// Counts, histograms, dead flags and example rows identical; maxima, means, top activations and
// the reconstruction's squared error within 1e-5; and some latent fired (else all agree trivially).
inline void expect_same_pass_outputs(const PassOutputs& gpu, const PassOutputs& cpu) {
  EXPECT_EQ(gpu.stats.fire_count, cpu.stats.fire_count);
  EXPECT_EQ(gpu.stats.hist_counts, cpu.stats.hist_counts);
  EXPECT_EQ(gpu.stats.dead, cpu.stats.dead);
  EXPECT_EQ(gpu.examples.top.row, cpu.examples.top.row);
  EXPECT_EQ(gpu.examples.interval.row, cpu.examples.interval.row);
  expect_close(gpu.stats.max_activation, cpu.stats.max_activation, {}, 1e-5, "max activation");
  expect_close(gpu.stats.mean_activation, cpu.stats.mean_activation, {}, 1e-5, "mean activation");
  expect_close(gpu.examples.top.activation, cpu.examples.top.activation, {}, 1e-5, "top activations");
  EXPECT_NEAR(gpu.recon_sse, cpu.recon_sse, 1e-5 * cpu.recon_sse);
  int64_t fired = 0;
  for (int64_t c : cpu.stats.fire_count) fired += c;
  EXPECT_GT(fired, 0);
}

}  // namespace saepipe::test
