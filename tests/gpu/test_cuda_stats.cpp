// The stats passes on the GPU (pipeline/stats/cuda/feature_passes.hpp) against FirstPass / SecondPass
// (pipeline/stats/feature_passes.hpp) on the same codes: counts, sums, maxima, histograms,
// quantiles and flags must be identical, bit for bit. The example selections are compared, also
// bit for bit, with a plain reference of ExampleSelection's rule (per group the `slots` best by
// priority desc, row asc; contexts from EncodedBatch::context): the CPU class itself merges
// through MPI, which this binary does not start. Then the TopK encoder against
// sae_encode_decode. Without a CUDA device every test skips (GTEST_SKIP).
//
// Shape legend: n tokens per batch, W slots per token, D d_in, F d_sae, L sequence length.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "pipeline/stats/cuda/feature_passes.hpp"
#include "pipeline/core/counter_rng.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/stats/feature_passes.hpp"
#include "tests/gpu/cuda_test_util.hpp"

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
  cuda::CudaFeaturePasses gp(D, F, H, opt);
  std::vector<DeviceBuffer<int32_t>> tok(batches.size()), idx(batches.size());
  std::vector<DeviceBuffer<float>> val(batches.size()), x(batches.size()), rec(batches.size());
  std::vector<cuda::DeviceCodes> codes;
  for (size_t i = 0; i < batches.size(); ++i) {
    tok[i].upload(batches[i].tokens), idx[i].upload(batches[i].idx), val[i].upload(batches[i].val);
    x[i].upload(batches[i].x), rec[i].upload(batches[i].recon);
    codes.push_back({batches[i].first_row, n, L, tok[i].data(), idx[i].data(), val[i].data(), W});
  }
  for (size_t i = 0; i < batches.size(); ++i) gp.first_add(codes[i], x[i].data(), rec[i].data(), stream);
  const std::vector<float> max_gpu = gp.max_activation(stream);
  EXPECT_EQ(max_gpu, fp.max_activation());
  gp.begin_second(max_gpu, stream);
  for (size_t i = 0; i < batches.size(); ++i) gp.second_add(codes[i], stream);
  FeatureStats got;
  gp.finish_first(got, 0.1, 0.02, stream);
  gp.finish_second(got, levels, stream);

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

  const std::vector<double> sums = gp.recon_sums(stream);
  ASSERT_EQ(int64_t(sums.size()), 4 + D);
  for (int64_t i = 0; i < 4 + D; ++i) EXPECT_EQ(sums[size_t(i)], fp.recon().sums.value(size_t(i))) << "sum " << i;
  EXPECT_EQ(gp.n_tokens(), fp.recon().n_tokens);

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
  expect_same_examples(gp.top_examples(stream),
                       reference_selection(top, opt.top, 1, opt.before, opt.after, batches, L, W), "top");
  expect_same_examples(gp.interval_examples(stream),
                       reference_selection(interval, opt.interval_per_bin, opt.interval_bins, opt.before, opt.after,
                                           batches, L, W),
                       "interval");
}

// The TopK encoder (fp32 matmul) against the CPU's: the same latents where the k-th and the
// (k+1)-th pre-activations are not within rounding, values and reconstructions within 1e-4.
TEST_F(CudaStats, TopKEncoderMatchesCpu) {
  const int64_t N = 300, D = 64, F = 512, K = 16;
  SaeParams p(D, F);
  init_tied(p, 3);
  std::mt19937_64 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t f = 0; f < F; ++f) p.b_enc()[f] = 0.05f * normal(rng);
  for (int64_t d = 0; d < D; ++d) p.b_dec()[d] = 0.1f * normal(rng);
  std::vector<float> x(size_t(N * D));
  for (auto& v : x) v = normal(rng);
  SaeConfig cfg;
  cfg.architecture = Architecture::TopK;
  cfg.k = K;
  cfg.auxk = 0;
  SaeWorkspace ws;
  sae_encode_decode(p, cfg, x.data(), N, ws);
  ASSERT_EQ(ws.width, K);

  cuda::Blas blas;
  cuda::CudaTopKEncoder enc(p, K, cuda::GemmPrecision::FP32, 128);  // several chunks
  DeviceBuffer<float> xd;
  xd.upload(x);
  enc.encode(xd.data(), N, blas, stream);
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<int32_t> idx(size_t(N * K));
  std::vector<float> val(size_t(N * K)), recon(size_t(N * D));
  SAE_CUDA_CHECK(cudaMemcpy(idx.data(), enc.idx(), idx.size() * 4, cudaMemcpyDeviceToHost));
  SAE_CUDA_CHECK(cudaMemcpy(val.data(), enc.val(), val.size() * 4, cudaMemcpyDeviceToHost));
  SAE_CUDA_CHECK(cudaMemcpy(recon.data(), enc.recon(), recon.size() * 4, cudaMemcpyDeviceToHost));
  int64_t same_rows = 0;
  for (int64_t t = 0; t < N; ++t) {
    std::vector<int32_t> a(idx.begin() + t * K, idx.begin() + (t + 1) * K), b(ws.idx.begin() + t * K, ws.idx.begin() + (t + 1) * K);
    std::sort(a.begin(), a.end()), std::sort(b.begin(), b.end());
    if (a != b) continue;  // a near tie at the k-th value, decided differently by rounding
    ++same_rows;
    for (int64_t j = 0; j < K; ++j)
      EXPECT_NEAR(val[size_t(t * K + j)], ws.val[size_t(t * K + j)], 1e-4 * (1 + std::abs(ws.val[size_t(t * K + j)])));
    for (int64_t d = 0; d < D; ++d) {
      const size_t i = size_t(t * D + d);
      EXPECT_NEAR(recon[i], ws.recon[i], 1e-4 * (1 + std::abs(ws.recon[i])));
    }
  }
  EXPECT_GE(same_rows, N - 3);
}

}  // namespace
}  // namespace saepipe
