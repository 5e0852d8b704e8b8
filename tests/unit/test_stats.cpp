// The stats stage's pieces against plain recomputations: quantiles from histograms against
// sorted order statistics, the bounded example selections and both passes against full sorts
// of every (token, latent) activation, decoder neighbours against a float64 brute force,
// the order independence of ExactSums, and the scratch file of codes round-tripping.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>
#include <random>
#include <set>

#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/counter_rng.hpp"
#include "pipeline/stats/code_spill.hpp"
#include "pipeline/stats/decoder_neighbours.hpp"
#include "pipeline/stats/exact_sum.hpp"
#include "pipeline/stats/feature_passes.hpp"
#include "pipeline/stats/ground_truth_match.hpp"

namespace saepipe {
namespace {

TEST(Stats, QuantileFromHistogramBracketsTheOrderStatistic) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t n = 1 + int64_t(rng() % 2000), B = 256;
    std::vector<float> v(static_cast<size_t>(n));
    std::exponential_distribution<float> ex(trial % 2 ? 0.5f : 4.0f);
    for (auto& a : v) a = ex(rng) + 1e-6f;
    const float hi = *std::max_element(v.begin(), v.end());
    std::vector<int64_t> counts(static_cast<size_t>(B), 0);
    for (float a : v) ++counts[size_t(std::min<int64_t>(B - 1, int64_t(double(a) / hi * B)))];
    std::vector<float> sorted(v);
    std::sort(sorted.begin(), sorted.end());
    for (double q : {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
      const int64_t rank = std::max<int64_t>(1, int64_t(std::ceil(q * double(n))));  // 1-based
      const float exact = sorted[size_t(rank - 1)];
      const float est = quantile_from_histogram(counts.data(), B, hi, q);
      EXPECT_LE(std::abs(est - exact), hi / B * 1.0001f) << "n " << n << " q " << q;
    }
  }
}

TEST(Stats, ExactSumsDoNotDependOnOrder) {
  std::mt19937_64 rng(3);
  std::vector<double> v(10000);
  for (auto& a : v) a = std::ldexp(double(int64_t(rng() % 2000000) - 1000000), int(rng() % 40) - 20);
  ExactSums a(1), b(1);
  for (double x : v) a.add(0, x);
  std::shuffle(v.begin(), v.end(), rng);
  for (double x : v) b.add(0, x);
  EXPECT_EQ(a.value(0), b.value(0));
  long double ref = 0;
  for (double x : v) ref += x;
  EXPECT_NEAR(a.value(0), double(ref), 1e-6 * std::abs(double(ref)) + 1e-9);
}

// A batch of random sparse codes over S sequences of length Lseq, with token ids.
struct RandomCodes {
  int64_t n, width, F, L;
  std::vector<int32_t> idx, tokens;
  std::vector<float> val;
};

RandomCodes random_codes(int64_t n, int64_t F, int64_t width, int64_t L, uint64_t seed) {
  RandomCodes c{n, width, F, L, {}, {}, {}};
  std::mt19937_64 rng(seed);
  c.idx.assign(static_cast<size_t>(n * width), -1);
  c.val.assign(static_cast<size_t>(n * width), 0.0f);
  c.tokens.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    c.tokens[size_t(t)] = int32_t(rng() % 1000);
    std::vector<int32_t> fs(static_cast<size_t>(F));
    std::iota(fs.begin(), fs.end(), 0);
    std::shuffle(fs.begin(), fs.end(), rng);
    for (int64_t j = 0; j < width; ++j) {
      if (rng() % 4 == 0) continue;  // an empty slot
      c.idx[size_t(t * width + j)] = fs[size_t(j)];
      // Quantised values so that equal activations (ties) occur.
      c.val[size_t(t * width + j)] = float(1 + rng() % 64) / 16.0f;
    }
  }
  return c;
}

float act_of(const RandomCodes& c, int64_t t, int32_t f) {
  for (int64_t j = 0; j < c.width; ++j)
    if (c.idx[size_t(t * c.width + j)] == f) return c.val[size_t(t * c.width + j)];
  return 0.0f;
}

TEST(Stats, PassesMatchPlainRecomputation) {
  const int64_t F = 24, W = 5, L = 16, n = 16 * 40, D = 3;
  const RandomCodes c = random_codes(n, F, W, L, 11);
  ExampleOptions eo;
  eo.top = 7;
  eo.interval_bins = 4;
  eo.interval_per_bin = 3;
  eo.before = 3;
  eo.after = 2;
  eo.seed = 5;
  std::vector<float> x(static_cast<size_t>(n * D), 1.0f), recon(static_cast<size_t>(n * D), 0.5f);
  MpiEnv env;
  FirstPass p1(D, F, eo);
  // Feed in batches of whole sequences (as the stage does), 3 sequences at a time.
  auto feed = [&](const std::function<void(const EncodedBatch&)>& use) {
    for (int64_t a = 0; a < n; a += 3 * L) {
      const int64_t m = std::min(3 * L, n - a);
      EncodedBatch b{a, m, L, c.tokens.data() + a, c.idx.data() + a * W, c.val.data() + a * W, W};
      use(b);
    }
  };
  feed([&](const EncodedBatch& b) { p1.add(b, x.data() + b.first_row * D, recon.data() + b.first_row * D); });
  p1.reduce(env);
  FeatureStats fs;
  p1.finish(fs, 0.3, 0.01);
  const ExampleSet top = p1.top_examples(env);
  SecondPass p2(p1.max_activation(), 10, eo);
  feed([&](const EncodedBatch& b) { p2.add(b); });
  p2.reduce(env);
  p2.finish(fs, {0.5, 0.9});
  const ExampleSet interval = p2.interval_examples(env);

  const int64_t C = eo.before + 1 + eo.after;
  for (int32_t f = 0; f < F; ++f) {
    // Every (row, activation) of latent f, plainly.
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t t = 0; t < n; ++t)
      if (float a = act_of(c, t, f); a > 0) all.push_back({a, t});
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(fs.fire_count[size_t(f)], int64_t(all.size()));
    float mx = 0;
    double sum = 0;
    for (auto& [a, t] : all) mx = std::max(mx, a), sum += a;
    EXPECT_EQ(fs.max_activation[size_t(f)], mx);
    EXPECT_FLOAT_EQ(fs.mean_activation[size_t(f)], float(sum / double(all.size())));
    EXPECT_EQ(fs.dense[size_t(f)], double(all.size()) / double(n) > 0.3);
    // 10-bin histogram.
    std::vector<int64_t> h(10, 0);
    for (auto& [a, t] : all) ++h[size_t(std::min<int64_t>(9, int64_t(double(a) / mx * 10)))];
    for (int64_t b = 0; b < 10; ++b) EXPECT_EQ(fs.hist_counts[size_t(f * 10 + b)], h[size_t(b)]) << f << " " << b;
    // Quantiles within one fine bin of the order statistic.
    std::vector<float> vals;
    for (auto& [a, t] : all) vals.push_back(a);
    std::sort(vals.begin(), vals.end());
    for (size_t qi = 0; qi < 2; ++qi) {
      const double q = qi == 0 ? 0.5 : 0.9;
      const float exact = vals[size_t(std::max<int64_t>(1, int64_t(std::ceil(q * double(vals.size())))) - 1)];
      EXPECT_LE(std::abs(fs.quantiles[size_t(f) * 2 + qi] - exact), mx / SecondPass::kFineBins * 1.0001f);
    }
    // Top examples: the first 7 by (activation desc, row asc), with their contexts.
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int64_t e = 0; e < eo.top; ++e) {
      const size_t s = size_t(f * eo.top + e);
      if (e >= int64_t(all.size())) {
        EXPECT_EQ(top.row[s], -1);
        continue;
      }
      EXPECT_EQ(top.row[s], all[size_t(e)].second) << "latent " << f << " slot " << e;
      EXPECT_EQ(top.activation[s], all[size_t(e)].first);
      const int64_t row = all[size_t(e)].second, seq0 = row / L * L;
      for (int64_t k = 0; k < C; ++k) {
        const int64_t w = row - eo.before + k;
        const bool in = w >= seq0 && w < seq0 + L;
        EXPECT_EQ(top.ctx_tokens[s * size_t(C) + size_t(k)], in ? c.tokens[size_t(w)] : -1);
        EXPECT_EQ(top.ctx_acts[s * size_t(C) + size_t(k)], in ? act_of(c, w, f) : 0.0f);
      }
    }
    // Interval samples: per bin of (0, max], the rows of smallest hash.
    for (int64_t b = 0; b < eo.interval_bins; ++b) {
      std::vector<std::pair<uint64_t, int64_t>> in_bin;
      for (auto& [a, t] : all)
        if (std::min<int64_t>(3, int64_t(double(a) / mx * 4)) == b)
          in_bin.push_back({counter_hash(5, 0x1A7E5A11ull, uint64_t(f), uint64_t(t)), t});
      std::sort(in_bin.begin(), in_bin.end());
      for (int64_t e = 0; e < eo.interval_per_bin; ++e) {
        const size_t s = size_t(f * eo.interval_bins * eo.interval_per_bin + b * eo.interval_per_bin + e);
        EXPECT_EQ(interval.row[s], e < int64_t(in_bin.size()) ? in_bin[size_t(e)].second : -1)
            << "latent " << f << " bin " << b << " slot " << e;
      }
    }
  }
  // Reconstruction sums: |x - recon|^2 = 0.25 * D per token.
  EXPECT_DOUBLE_EQ(p1.recon().sums.value(0), 0.25 * D * n);
}

TEST(Stats, DecoderNeighboursMatchBruteForce) {
  const int64_t F = 300, D = 16, K = 5;
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> W(static_cast<size_t>(F * D));
  for (auto& w : W) w = nd(rng);
  std::vector<int32_t> idx;
  std::vector<float> cs;
  decoder_neighbours(W.data(), F, D, K, idx, cs);
  ASSERT_EQ(idx.size(), size_t(F * K));
  ASSERT_EQ(cs.size(), size_t(F * K));
  int64_t total_exact = 0;
  for (int64_t f = 0; f < F; ++f) {
    std::vector<std::pair<double, int32_t>> all;
    for (int32_t g = 0; g < F; ++g) {
      if (g == f) continue;
      double dot = 0, nf = 0, ng = 0;
      for (int64_t d = 0; d < D; ++d) {
        dot += double(W[size_t(f * D + d)]) * W[size_t(g * D + d)];
        nf += double(W[size_t(f * D + d)]) * W[size_t(f * D + d)];
        ng += double(W[size_t(g * D + d)]) * W[size_t(g * D + d)];
      }
      all.push_back({dot / std::sqrt(nf * ng), g});
    }
    std::vector<double> cos_of(size_t(F), -2.0);  // float64 cosine with f, by latent
    for (auto& [c, g] : all) cos_of[size_t(g)] = c;
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::set<int32_t> seen;
    int64_t exact = 0;
    for (int64_t j = 0; j < K; ++j) {
      const int32_t got = idx[size_t(f * K + j)];
      // The returned latent itself: another latent, not repeated, and of the j-th best cosine
      // (a near-tie may swap two places under float rounding, never bring in a worse one).
      ASSERT_TRUE(got >= 0 && got < F && got != f) << "latent " << f << " neighbour " << j << " = " << got;
      EXPECT_TRUE(seen.insert(got).second) << "latent " << f << ": neighbour " << got << " repeated";
      EXPECT_NEAR(cos_of[size_t(got)], all[size_t(j)].first, 1e-5) << "latent " << f << " neighbour " << j;
      EXPECT_NEAR(cs[size_t(f * K + j)], all[size_t(j)].first, 1e-5);
      exact += got == all[size_t(j)].second;
    }
    total_exact += exact;
  }
  EXPECT_GT(total_exact, F * K * 9 / 10);  // random rows: ties are rare, nearly every place is exact
}

}  // namespace
}  // namespace saepipe

namespace saepipe {
namespace {

// The scratch file gives back exactly the batches written, in order, and its size is the sum of
// record_bytes (the figure the stats stage checks against its cap and the free space).
TEST(CodeSpill, RoundTripsBatches) {
  const std::string path = std::filesystem::temp_directory_path() / ("saepipe-spill-" + std::to_string(::getpid()));
  std::mt19937 rng(5);
  struct Batch {
    int64_t first, n, width;
    std::vector<int32_t> tokens, idx;
    std::vector<float> val;
  };
  std::vector<Batch> batches;
  for (int64_t b = 0; b < 4; ++b) {
    Batch x{b * 100, 7 + b, 1 + b % 3, {}, {}, {}};
    for (int64_t i = 0; i < x.n; ++i) x.tokens.push_back(int32_t(rng() % 50000));
    for (int64_t i = 0; i < x.n * x.width; ++i) {
      x.idx.push_back(int32_t(rng() % 1000) - 1);
      x.val.push_back(std::uniform_real_distribution<float>(0, 3)(rng));
    }
    batches.push_back(std::move(x));
  }
  int64_t expect_bytes = 0;
  {
    CodeSpill spill(path);
    for (const Batch& x : batches) {
      const EncodedBatch eb{x.first, x.n, 16, x.tokens.data(), x.idx.data(), x.val.data(), x.width};
      ASSERT_TRUE(spill.write(eb)) << spill.error();
      expect_bytes += CodeSpill::record_bytes(eb);
    }
    EXPECT_EQ(spill.bytes(), expect_bytes);
    ASSERT_TRUE(spill.rewind()) << spill.error();
    EXPECT_EQ(int64_t(std::filesystem::file_size(path)), expect_bytes);
    for (const Batch& x : batches) {
      const EncodedBatch got = spill.read(16);
      ASSERT_EQ(got.first_row, x.first);
      ASSERT_EQ(got.n, x.n);
      ASSERT_EQ(got.width, x.width);
      EXPECT_EQ(got.sequence_length, 16);
      EXPECT_TRUE(std::equal(x.tokens.begin(), x.tokens.end(), got.tokens));
      EXPECT_TRUE(std::equal(x.idx.begin(), x.idx.end(), got.idx));
      EXPECT_TRUE(std::equal(x.val.begin(), x.val.end(), got.val));
    }
  }
  EXPECT_FALSE(std::filesystem::exists(path)) << "the scratch file outlives its object";
}

}  // namespace
}  // namespace saepipe

// A zero row of the ground truth (a feature absent from a store's later hook) is left out of the
// MMCS and the recovered fractions; the others are matched by their best decoder cosine.
TEST(GroundTruthMatch, AbsentFeaturesAreLeftOut) {
  const int64_t D = 3, F = 2;
  // True features: e0, absent, e1 (scaled: cosine ignores norms). Decoder: e0, (e1 + e2)/sqrt2.
  const std::vector<float> gt = {2, 0, 0, 0, 0, 0, 0, 0.5f, 0};
  const float r = float(1 / std::sqrt(2.0));
  const std::vector<float> dec = {1, 0, 0, 0, r, r};
  const saepipe::GroundTruthMatch m = saepipe::match_ground_truth(gt, 3, dec.data(), F, D);
  EXPECT_EQ(m.n_present, 2);
  EXPECT_NEAR(m.mmcs, (1.0 + r) / 2, 1e-6);
  EXPECT_DOUBLE_EQ(m.frac_09, 0.5);
  EXPECT_EQ(m.latent_best, (std::vector<int64_t>{0, 2}));
}
