// pipeline/model: the whole model with a hook replaced (forward_final), the spliced next-token
// loss (spliced_loss.hpp) and the direct logit effects of decoder rows (logit_effects.hpp), on a
// tiny random GPT-2 from tests/python/make_tiny_gpt2.py. References: PyTorch float64
// (spliced loss, tests/python/model_metrics_reference.py) and NumPy float64 (logit effects).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/model/fast_math.hpp"
#include "pipeline/model/logit_effects.hpp"
#include "pipeline/model/spliced_loss.hpp"
#include "pipeline/model/transformer.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace saepipe;

namespace {

const std::vector<std::string> kHooks = {
    "hook_embed",           "hook_pos_embed",          "blocks.0.hook_resid_pre", "blocks.0.hook_attn_out",
    "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post", "blocks.1.hook_resid_pre",
    "blocks.1.hook_attn_out", "blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out",  "blocks.1.hook_resid_post",
    "ln_final.hook_normalized"};

template <class T>
std::vector<T> read_raw(const std::string& path, size_t n) {
  std::vector<T> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(T)));
  EXPECT_TRUE(bool(f)) << path;
  return v;
}

// A 2-layer GPT-2 (d 64, 4 heads, vocab 512, 64 positions), made once for the suite; the
// reference's tokens, decoder rows and values, made on first use when torch is there.
class ModelMetrics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = "/tmp/saepipe-model-metrics-" + std::to_string(::getpid());
    fs::remove_all(dir_);
    have_model_ = std::system(("/usr/bin/python3 " SAEPIPE_SOURCE_DIR "/tests/python/make_tiny_gpt2.py " + dir_ +
                               " --layers 2 --d 64 --heads 4 --vocab 512 --positions 64 --seed 3 >/dev/null 2>&1")
                                  .c_str()) == 0;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void SetUp() override {
    // scripts/setup.sh installs python3-numpy and python3-torch: a missing reference is a failure.
    ASSERT_TRUE(have_model_) << "/usr/bin/python3 could not run make_tiny_gpt2.py (numpy missing?)";
  }
  // The float64 references (made once); nullptr, with the script's output in `why`, when
  // /usr/bin/python3 lacks torch or the script fails: the tests then fail, never skip.
  static const nlohmann::json* reference(std::string* why) {
    if (ref_.is_null()) {
      const std::string log = dir_ + "/reference.log";
      const std::string cmd = "/usr/bin/python3 " SAEPIPE_SOURCE_DIR "/tests/python/model_metrics_reference.py " +
                              dir_ + " " + dir_ + "/ref --features 70 >" + log + " 2>&1";
      const bool ok = std::system(cmd.c_str()) == 0 && path_exists(dir_ + "/ref/reference.json");
      ref_ = ok ? nlohmann::json::parse(read_file(dir_ + "/ref/reference.json")) : nlohmann::json(false);
      if (!ok) why_ = path_exists(log) ? read_file(log) : "no output";
    }
    *why = why_;
    return ref_.is_object() ? &ref_ : nullptr;
  }

  static std::string dir_;
  static bool have_model_;
  static nlohmann::json ref_;
  static std::string why_;
};
std::string ModelMetrics::dir_;
bool ModelMetrics::have_model_ = false;
nlohmann::json ModelMetrics::ref_;
std::string ModelMetrics::why_;

// The edit the reference applies: x * 0.5 + 0.25 * (d % 5 - 2) at channel d.
ActivationEdit affine_edit(int64_t D) {
  return [D](float* a, int64_t rows) {
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t d = 0; d < D; ++d) a[n * D + d] = a[n * D + d] * 0.5f + 0.25f * float(d % 5 - 2);
  };
}

std::vector<int32_t> some_tokens(int64_t n, uint32_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = int32_t((uint32_t(i) * 2654435761u + seed) % 511u);
  return t;
}

}  // namespace

// fast_exp (the softmaxes of spliced_loss) against exp in double over its range.
TEST(FastMath, ExpWithin2e7) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 1.37e-4) {
    const double want = std::exp(double(float(x)));
    worst = std::max(worst, std::abs(double(fast_exp(float(x))) - want) / want);
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  EXPECT_GT(fast_exp(-1000.0f), 0.0f);
  EXPECT_LT(fast_exp(-1000.0f), 1.3e-38f);
}

TEST_F(ModelMetrics, FullLoaderAndAccessors) {
  const auto full = load_transformer_full(dir_);
  EXPECT_TRUE(full->is_full());
  ASSERT_NE(full->final_norm().weight, nullptr);
  ASSERT_NE(full->final_norm().bias, nullptr);
  EXPECT_FALSE(full->final_norm().rms);
  const auto part = load_transformer(dir_, {"blocks.0.hook_resid_post"});
  EXPECT_FALSE(part->is_full());
  EXPECT_EQ(part->final_norm().weight, nullptr);
  EXPECT_EQ(part->unembedding(), nullptr);  // a harvest does not load it
  // The unembedding is wte (tied): row v is hook_embed of token v.
  const std::vector<int32_t> tok = {7, 300};
  std::vector<float> emb(2 * 64);
  part->forward(tok.data(), 1, 2, {parse_hook("hook_embed", 2)}, {emb.data()});
  for (int64_t i = 0; i < 2; ++i)
    EXPECT_EQ(0, std::memcmp(emb.data() + i * 64, full->unembedding() + tok[size_t(i)] * 64, 64 * sizeof(float)));
  // Needing the whole model without it is a programming error (exit 1), not a crash.
  const auto hook = parse_hook("blocks.0.hook_resid_post", 2);
  try {
    spliced_loss(*part, tok.data(), 1, 2, hook, {});
    ADD_FAILURE() << "no error";
  } catch (const SaeError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Internal);
    EXPECT_NE(std::string(e.what()).find("load_transformer_full"), std::string::npos) << e.what();
  }
  LogitEffects le;
  std::vector<float> w(64, 1.0f);
  EXPECT_THROW(logit_effects(*part, w.data(), 1, 64, 3, 4, le), SaeError);
}

// What each hook sees under forward_final is what forward() stores there, bit for bit; an
// identity edit reproduces the clean run exactly (loss equal, KL exactly 0) at every hook.
TEST_F(ModelMetrics, HooksSeeTheHarvestValuesAndIdentityEditIsExact) {
  const auto m = load_transformer_full(dir_);
  SingleThreadedBlas blas;
  const int64_t B = 2, T = 24, D = 64, N = B * T;
  const auto tok = some_tokens(N, 11);
  std::vector<HookPoint> hooks;
  std::vector<std::vector<float>> want(kHooks.size(), std::vector<float>(size_t(N * D)));
  std::vector<float*> ptr;
  for (size_t h = 0; h < kHooks.size(); ++h) hooks.push_back(parse_hook(kHooks[h], 2)), ptr.push_back(want[h].data());
  m->forward(tok.data(), B, T, hooks, ptr);
  std::vector<float> clean_final;
  for (size_t h = 0; h < kHooks.size(); ++h) {
    std::vector<float> seen, f0(size_t(N * D)), f1(size_t(N * D));
    const ActivationEdit look = [&](float* a, int64_t rows) { seen.assign(a, a + rows * D); };
    m->forward_final(tok.data(), B, T, hooks[h], {ActivationEdit(), look}, {f0.data(), f1.data()});
    EXPECT_EQ(seen, want[h]) << kHooks[h];
    EXPECT_EQ(f0, f1) << kHooks[h];
    if (h == 0) clean_final = f0;
    EXPECT_EQ(f0, clean_final) << kHooks[h] << ": the clean run depends on the hook";

    const SplicedLossSums s = spliced_loss(*m, tok.data(), B, T, hooks[h], [](float*, int64_t) {});
    EXPECT_EQ(s.n_predictions, B * (T - 1));
    EXPECT_EQ(s.n_positions, B * T);
    EXPECT_EQ(s.spliced_loss, s.clean_loss) << kHooks[h];
    EXPECT_EQ(s.kl_spliced, 0.0) << kHooks[h];
    EXPECT_GT(s.kl_zero, 0.0) << kHooks[h];
    EXPECT_EQ(s.ce_loss_score(), 1.0) << kHooks[h];
    EXPECT_EQ(s.kl_div_score(), 1.0) << kHooks[h];
  }
  // The clean final output is ln_f(resid_post of the last block).
  const float *w = m->final_norm().weight, *b = m->final_norm().bias;
  for (int64_t i = 0; i < N * D; ++i)
    EXPECT_NEAR(clean_final[size_t(i)], want[12][size_t(i)] * w[i % D] + b[i % D], 1e-6);
}

// The sums do not depend on the OpenMP thread count, and a batch is the sum of its sequences.
TEST_F(ModelMetrics, SplicedLossThreadInvariantAndAdditive) {
  const auto m = load_transformer_full(dir_);
  SingleThreadedBlas blas;
  const int64_t B = 3, T = 50, D = 64;  // 147 predictions: three blocks of up to 64
  const auto tok = some_tokens(B * T, 5);
  const auto hook = parse_hook("blocks.1.hook_resid_pre", 2);
  SplicedLossSums one, two;
  {
    saepipe::test::ThreadCount t(1);
    one = spliced_loss(*m, tok.data(), B, T, hook, affine_edit(D));
  }
  {
    saepipe::test::ThreadCount t(2);
    two = spliced_loss(*m, tok.data(), B, T, hook, affine_edit(D));
  }
  EXPECT_EQ(one.clean_loss, two.clean_loss);
  EXPECT_EQ(one.spliced_loss, two.spliced_loss);
  EXPECT_EQ(one.zero_loss, two.zero_loss);
  EXPECT_EQ(one.kl_spliced, two.kl_spliced);
  EXPECT_EQ(one.kl_zero, two.kl_zero);
  SplicedLossSums sum;
  for (int64_t b = 0; b < B; ++b) sum += spliced_loss(*m, tok.data() + b * T, 1, T, hook, affine_edit(D));
  EXPECT_EQ(sum.n_predictions, one.n_predictions);
  EXPECT_EQ(sum.n_positions, one.n_positions);
  for (auto [x, y] : {std::pair{sum.clean_loss, one.clean_loss}, {sum.spliced_loss, one.spliced_loss},
                      {sum.zero_loss, one.zero_loss}, {sum.kl_spliced, one.kl_spliced}, {sum.kl_zero, one.kl_zero}})
    EXPECT_NEAR(x, y, 1e-6 * std::abs(y));
  EXPECT_EQ(spliced_loss(*m, tok.data(), B, 1, hook, affine_edit(D)).n_predictions, 0);
}

// Against PyTorch float64 at every hook kind: clean, spliced (x * 0.5 + 0.25 * (d % 5 - 2)) and
// zero-ablated loss, KL(clean || spliced) and KL(clean || zero).
TEST_F(ModelMetrics, SplicedLossMatchesTorchReference) {
  std::string why;
  const nlohmann::json* ref = reference(&why);
  ASSERT_NE(ref, nullptr) << "tests/python/model_metrics_reference.py (/usr/bin/python3 with torch) failed: " << why;
  const auto m = load_transformer_full(dir_);
  SingleThreadedBlas blas;
  const int64_t B = (*ref)["B"], T = (*ref)["T"], D = (*ref)["D"];
  const auto tok = read_raw<int32_t>(dir_ + "/ref/tokens.i32", size_t(B * T));
  for (const std::string& name : kHooks) {
    const nlohmann::json& r = (*ref)["spliced"][name];
    const SplicedLossSums s = spliced_loss(*m, tok.data(), B, T, parse_hook(name, 2), affine_edit(D));
    ASSERT_EQ(s.n_predictions, r["n"].get<int64_t>());
    ASSERT_EQ(s.n_positions, r["n_positions"].get<int64_t>());
    for (auto [got, key] : {std::pair{s.clean_loss, "clean"}, {s.spliced_loss, "spliced"}, {s.zero_loss, "zero"},
                            {s.kl_spliced, "kl_spliced"}, {s.kl_zero, "kl_zero"}}) {
      const double want = r[key];
      EXPECT_LE(std::abs(got - want), 1e-5 * std::abs(want)) << name << " " << key << ": " << got << " vs " << want;
    }
  }
}

// Against NumPy float64: top and bottom L token ids exactly (ties, in the all-zero row 0: lower
// id first), their values, the range and the histogram (counts may move by the effects that lie
// within fp32 rounding of a bin edge).
TEST_F(ModelMetrics, LogitEffectsMatchNumpy) {
  std::string why;
  const nlohmann::json* ref = reference(&why);
  ASSERT_NE(ref, nullptr) << "tests/python/model_metrics_reference.py (/usr/bin/python3 with torch) failed: " << why;
  const auto m = load_transformer_full(dir_);
  SingleThreadedBlas blas;
  const int64_t F = (*ref)["F"], D = (*ref)["D"], L = (*ref)["L"], H = (*ref)["H"], V = m->vocab_size();
  const auto W = read_raw<float>(dir_ + "/ref/w_dec.f32", size_t(F * D));
  LogitEffects out;
  logit_effects(*m, W.data(), F, D, L, H, out);
  ASSERT_EQ(out.n_logit_tokens, L);
  ASSERT_EQ(out.hist_bins, H);
  const nlohmann::json& r = (*ref)["logit"];
  for (int64_t f = 0; f < F; ++f) {
    const double span = r["hist_hi"][f].get<double>() - r["hist_lo"][f].get<double>();
    EXPECT_NEAR(out.logit_hist_lo[size_t(f)], r["hist_lo"][f].get<double>(), 1e-5 * std::max(span, 1e-3)) << f;
    EXPECT_NEAR(out.logit_hist_hi[size_t(f)], r["hist_hi"][f].get<double>(), 1e-5 * std::max(span, 1e-3)) << f;
    for (int64_t j = 0; j < L; ++j) {
      const size_t i = size_t(f * L + j);
      EXPECT_EQ(out.logit_top_ids[i], r["top_ids"][f][j].get<int32_t>()) << f << "," << j;
      EXPECT_EQ(out.logit_bottom_ids[i], r["bottom_ids"][f][j].get<int32_t>()) << f << "," << j;
      EXPECT_NEAR(out.logit_top_values[i], r["top_values"][f][j].get<double>(), 1e-5 * std::max(span, 1e-3));
      EXPECT_NEAR(out.logit_bottom_values[i], r["bottom_values"][f][j].get<double>(), 1e-5 * std::max(span, 1e-3));
    }
    int64_t total = 0, moved = 0;
    for (int64_t b = 0; b < H; ++b) {
      const int64_t got = out.logit_hist_counts[size_t(f * H + b)];
      total += got;
      moved += std::abs(got - r["hist_counts"][f][b].get<int64_t>());
    }
    EXPECT_EQ(total, V) << f;
    EXPECT_LE(moved, 2 * r["hist_slack"][f].get<int64_t>()) << f;
  }
  // Row 0 is zero: every effect is 0, all in bin 0, ids 0..L-1 at both ends.
  EXPECT_EQ(out.logit_hist_counts[0], V);
  for (int64_t j = 0; j < L; ++j) EXPECT_EQ(out.logit_top_ids[size_t(j)], j);
  // Blocks of 64 latents: a split over "ranks" gives the same rows.
  LogitEffects tail;
  logit_effects(*m, W.data() + 5 * D, F - 5, D, L, H, tail);
  for (int64_t i = 0; i < (F - 5) * L; ++i) EXPECT_EQ(tail.logit_top_ids[size_t(i)], out.logit_top_ids[size_t(5 * L + i)]);
}
