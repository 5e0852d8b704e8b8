// Parity: the CUDA GPT-2 forward pass (pipeline/model/cuda/gpt2.hpp) against the CPU reference
// (pipeline/model/gpt2.hpp) at every hook point, on random models written as Hugging Face
// directories; and the asynchronous harvest loop against plain forward passes. Without a CUDA
// device every test skips (GTEST_SKIP), so machines without a GPU compile and run this file.
//
// Tolerance rules, per hooked tensor:
//   fp32 (plain fp32 matmuls, no TF32): every element |gpu - cpu| <= 1e-5 * (|cpu| + rms(cpu)),
//     rms over the whole tensor so that values near zero are judged on the tensor's scale.
//     (On these weights fp32 itself errs by ~2e-6 on this measure against a float64 reference.)
//   bf16 / fp16: max |gpu - cpu| <= 1e-2 * max |cpu|. Rounding the matmul inputs to bf16 alone
//     already moves single elements by ~2e-2 of (|cpu| + rms), and the whole tensor by ~5e-3 of
//     its maximum (emulated in float64 on these weights), so the element rule cannot hold there.
//
// Shape legend: B sequences, T positions, C d_model, H heads, L layers, V vocab.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "pipeline/model/cuda/gpt2.hpp"
#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/model/safetensors.hpp"
#include "pipeline/model/transformer.hpp"

namespace saepipe {
namespace {

using cuda::ActType;

struct Shape {
  int64_t C, H, L, V, P;
  const char* act = "gelu_new";
};

// A temporary Hugging Face model directory with a random GPT-2 of the given shape.
class RandomGpt2 {
 public:
  RandomGpt2(const Shape& s, uint64_t seed) : shape_(s) {
    static int counter = 0;
    dir_ = (std::filesystem::temp_directory_path() /
            ("saepipe_gpt2_cuda_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
               .string();
    std::filesystem::create_directories(dir_);
    nlohmann::json cfg = {{"model_type", "gpt2"},   {"n_embd", s.C},      {"n_head", s.H},
                          {"n_layer", s.L},         {"n_positions", s.P}, {"vocab_size", s.V},
                          {"activation_function", s.act}, {"bos_token_id", s.V - 1}, {"eos_token_id", s.V - 1}};
    std::ofstream(dir_ + "/config.json") << cfg.dump();
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
    std::string data;
    // Scales chosen so every sublayer moves the residual stream by O(1): x W with std(W) =
    // 1/sqrt(in) keeps unit-variance inputs at unit variance.
    auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float base = 0.0f) {
      int64_t k = 1;
      for (int64_t d : shape) k *= d;
      const size_t begin = data.size();
      for (int64_t i = 0; i < k; ++i) {
        const float v = base + scale * n(rng);
        data.append(reinterpret_cast<const char*>(&v), 4);
      }
      header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
    };
    const int64_t C = s.C, I = 4 * s.C;
    const float wc = 1.0f / std::sqrt(float(C)), wi = 1.0f / std::sqrt(float(I));
    add("wte.weight", {s.V, C}, 0.5f);
    add("wpe.weight", {s.P, C}, 0.2f);
    for (int64_t l = 0; l < s.L; ++l) {
      const std::string h = "h." + std::to_string(l) + ".";
      add(h + "ln_1.weight", {C}, 0.1f, 1.0f);
      add(h + "ln_1.bias", {C}, 0.1f);
      add(h + "attn.c_attn.weight", {C, 3 * C}, wc);
      add(h + "attn.c_attn.bias", {3 * C}, 0.1f);
      add(h + "attn.c_proj.weight", {C, C}, wc);
      add(h + "attn.c_proj.bias", {C}, 0.1f);
      add(h + "ln_2.weight", {C}, 0.1f, 1.0f);
      add(h + "ln_2.bias", {C}, 0.1f);
      add(h + "mlp.c_fc.weight", {C, I}, wc);
      add(h + "mlp.c_fc.bias", {I}, 0.1f);
      add(h + "mlp.c_proj.weight", {I, C}, wi);
      add(h + "mlp.c_proj.bias", {C}, 0.1f);
    }
    add("ln_f.weight", {C}, 0.1f, 1.0f);
    add("ln_f.bias", {C}, 0.1f);
    std::string hs = header.dump();
    hs.append((8 - hs.size() % 8) % 8, ' ');
    std::string len(8, '\0');
    for (int i = 0; i < 8; ++i) len[size_t(i)] = char((uint64_t(hs.size()) >> (8 * i)) & 0xFF);
    std::ofstream(dir_ + "/model.safetensors", std::ios::binary) << len << hs << data;
  }
  ~RandomGpt2() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }
  const Shape& shape() const { return shape_; }

 private:
  Shape shape_;
  std::string dir_;
};

std::vector<std::string> all_hooks(int64_t L) {
  std::vector<std::string> h = {"hook_embed", "hook_pos_embed"};
  for (int64_t l = 0; l < L; ++l)
    for (const char* k : {"hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"})
      h.push_back("blocks." + std::to_string(l) + "." + k);
  h.push_back("ln_final.hook_normalized");
  return h;
}

// Only residual-stream hooks: every residual add then runs inside the matmuls (beta = 1).
std::vector<std::string> residual_hooks(int64_t L) {
  std::vector<std::string> h;
  for (int64_t l = 0; l < L; ++l)
    for (const char* k : {"hook_resid_pre", "hook_resid_mid", "hook_resid_post"})
      h.push_back("blocks." + std::to_string(l) + "." + k);
  h.push_back("ln_final.hook_normalized");
  return h;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> u(0, int32_t(V - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = u(rng);
  return t;
}

std::vector<std::vector<float>> run(const TransformerModel& m, const std::vector<std::string>& names,
                                    const std::vector<int32_t>& tokens, int64_t B, int64_t T) {
  std::vector<HookPoint> hooks;
  for (const auto& n : names) hooks.push_back(parse_hook(n, m.n_layers()));
  std::vector<std::vector<float>> out(hooks.size(), std::vector<float>(size_t(B * T * m.d_model()), NAN));
  std::vector<float*> ptr;
  for (auto& o : out) ptr.push_back(o.data());
  m.forward(tokens.data(), B, T, hooks, ptr);
  return out;
}

// Checks one of the two rules on every hook (elementwise: the fp32 rule; else the tensor
// rule); prints both measures for each hook.
void expect_parity(const std::vector<std::vector<float>>& gpu, const std::vector<std::vector<float>>& cpu,
                   const std::vector<std::string>& names, double rtol, bool elementwise, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  double worst_all = 0;
  for (size_t h = 0; h < names.size(); ++h) {
    const auto& g = gpu[h];
    const auto& r = cpu[h];
    ASSERT_EQ(g.size(), r.size());
    double ss = 0, max_ref = 0, max_diff = 0;
    for (float v : r) ss += double(v) * double(v), max_ref = std::max(max_ref, std::abs(double(v)));
    const double rms = std::sqrt(ss / double(std::max<size_t>(1, r.size())));
    double worst = 0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      const double d = std::abs(double(g[i]) - double(r[i]));
      const double e = d / (std::abs(double(r[i])) + rms + 1e-30);
      if (!(d <= max_diff)) max_diff = d;  // NaN propagates
      if (!(e <= rtol)) ++bad;             // NaN counts as bad
      if (!(e <= worst)) worst = e, at = i;
    }
    const double tensor = max_diff / (max_ref + 1e-30);
    worst_all = std::max(worst_all, elementwise ? worst : tensor);
    std::printf("  %-5s %-28s element %.2e  tensor %.2e  (rms %.2e)\n", what.c_str(), names[h].c_str(), worst, tensor,
                rms);
    if (elementwise)
      EXPECT_EQ(bad, 0u) << what << " " << names[h] << ": " << bad << " of " << r.size()
                         << " values beyond the tolerance; worst " << worst << " at " << at << " (gpu " << g[at]
                         << ", cpu " << r[at] << ")";
    else
      EXPECT_LE(tensor, rtol) << what << " " << names[h] << ": max |gpu - cpu| / max |cpu| = " << tensor;
  }
  std::printf("  %-5s worst over all hooks: %.2e (%s rule, tolerance %.0e)\n", what.c_str(), worst_all,
              elementwise ? "element" : "tensor", rtol);
}

class CudaGpt2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none)";
  }

  // The CPU and the CUDA model on the same directory and tokens, for a list of hooks.
  void check(const Shape& s, int64_t B, int64_t T, const std::vector<std::string>& names, ActType precision,
             bool fuse, double rtol, uint64_t seed) {
    RandomGpt2 m(s, seed);
    const auto cpu_model = load_transformer(m.dir(), names);
    cuda::Gpt2CudaOptions opt;
    opt.precision = precision;
    opt.fuse_epilogues = fuse;
    const auto gpu_model = cuda::load_gpt2_cuda(m.dir(), names, opt);
    const auto tokens = random_tokens(B * T, s.V, seed + 1);
    const auto ref = run(*cpu_model, names, tokens, B, T);
    const auto got = run(*gpu_model, names, tokens, B, T);
    std::printf("C=%lld H=%lld L=%lld B=%lld T=%lld %s %s epilogues\n%s", (long long)s.C, (long long)s.H,
                (long long)s.L, (long long)B, (long long)T, cuda::to_string(precision), fuse ? "fused" : "unfused",
                gpu_model->gemm_report().c_str());
    expect_parity(got, ref, names, rtol, precision == ActType::F32, cuda::to_string(precision));
  }
};

const Shape kSmall{128, 2, 3, 97, 300};      // hs = 64, like every GPT-2 size
const Shape kNarrowHeads{64, 4, 2, 50, 80};  // hs = 16: lanes beyond the head size idle
const Shape kWideHeads{256, 2, 2, 50, 80};   // hs = 128 = kMaxHeadSize

TEST_F(CudaGpt2, Fp32EveryHookMatchesCpu) {
  check(kSmall, 3, 67, all_hooks(kSmall.L), ActType::F32, true, 1e-5, 11);
}

TEST_F(CudaGpt2, Fp32ResidualHooksFusedResidualAdd) {
  check(kSmall, 3, 67, residual_hooks(kSmall.L), ActType::F32, true, 1e-5, 12);
}

TEST_F(CudaGpt2, Fp32LongContextManyKeyTiles) {
  check(kSmall, 2, 300, all_hooks(kSmall.L), ActType::F32, true, 1e-5, 13);
}

TEST_F(CudaGpt2, Fp32HeadSizes16And128) {
  check(kNarrowHeads, 2, 45, all_hooks(kNarrowHeads.L), ActType::F32, true, 1e-5, 14);
  check(kWideHeads, 2, 45, all_hooks(kWideHeads.L), ActType::F32, true, 1e-5, 15);
}

TEST_F(CudaGpt2, Fp32UnfusedEpilogues) {
  check(kSmall, 3, 67, all_hooks(kSmall.L), ActType::F32, false, 1e-5, 16);
  check(kSmall, 3, 67, residual_hooks(kSmall.L), ActType::F32, false, 1e-5, 17);
}

TEST_F(CudaGpt2, Fp32ExactGelu) {
  Shape s = kSmall;
  s.act = "gelu";
  check(s, 2, 40, all_hooks(s.L), ActType::F32, true, 1e-5, 18);
}

TEST_F(CudaGpt2, Bf16EveryHookWithin1e2) {
  check(kSmall, 3, 67, all_hooks(kSmall.L), ActType::BF16, true, 1e-2, 19);
  check(kSmall, 3, 67, residual_hooks(kSmall.L), ActType::BF16, true, 1e-2, 20);
}

TEST_F(CudaGpt2, Fp16EveryHookWithin1e2) {
  check(kSmall, 3, 67, all_hooks(kSmall.L), ActType::F16, true, 1e-2, 21);
}

TEST_F(CudaGpt2, StopsAfterLastHookedLayer) {
  RandomGpt2 m(kSmall, 22);
  cuda::Gpt2CudaOptions opt;
  EXPECT_EQ(cuda::load_gpt2_cuda(m.dir(), {"blocks.1.hook_resid_post"}, opt)->blocks_loaded(), 2);
  EXPECT_EQ(cuda::load_gpt2_cuda(m.dir(), {"hook_embed"}, opt)->blocks_loaded(), 0);
  EXPECT_EQ(cuda::load_gpt2_cuda(m.dir(), {"blocks.0.hook_mlp_out", "ln_final.hook_normalized"}, opt)->blocks_loaded(),
            kSmall.L);
  // Embedding hooks alone run no block at all.
  check(kSmall, 2, 10, {"hook_embed", "hook_pos_embed"}, ActType::F32, true, 1e-6, 23);
}

// The asynchronous loop gives, bit for bit, what forward() gives for the same batches
// (same kernels, same shapes), including a smaller last batch.
TEST_F(CudaGpt2, HarvestPipelineMatchesForward) {
  RandomGpt2 m(kSmall, 24);
  const std::vector<std::string> names = {"blocks.1.hook_resid_post", "blocks.0.hook_mlp_out"};
  cuda::Gpt2CudaOptions opt;
  opt.precision = ActType::BF16;
  const auto model = cuda::load_gpt2_cuda(m.dir(), names, opt);
  std::vector<HookPoint> hooks;
  for (const auto& n : names) hooks.push_back(parse_hook(n, model->n_layers()));
  const int64_t T = 33, maxB = 4, C = kSmall.C;
  const std::vector<int64_t> batches = {4, 4, 4, 4, 3};
  std::vector<std::vector<int32_t>> tokens;
  for (size_t i = 0; i < batches.size(); ++i) tokens.push_back(random_tokens(batches[i] * T, kSmall.V, 100 + i));
  std::vector<std::vector<std::vector<float>>> got(batches.size());
  {
    cuda::Gpt2CudaHarvest h(*model, hooks, maxB, T, 2);
    auto take = [&](size_t i) {
      const auto& ptr = h.wait(int(i % 2));
      for (size_t k = 0; k < hooks.size(); ++k)
        got[i].emplace_back(ptr[k], ptr[k] + batches[i] * T * C);
      EXPECT_GT(h.last_pass_seconds(int(i % 2)), 0.0);
    };
    for (size_t i = 0; i < batches.size(); ++i) {
      h.submit(int(i % 2), tokens[i].data(), batches[i]);
      if (i > 0) take(i - 1);
    }
    take(batches.size() - 1);
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto ref = run(*model, names, tokens[i], batches[i], T);
    for (size_t k = 0; k < hooks.size(); ++k) {
      ASSERT_EQ(got[i][k].size(), ref[k].size());
      size_t diff = 0;
      for (size_t j = 0; j < ref[k].size(); ++j) diff += got[i][k][j] != ref[k][j];
      EXPECT_EQ(diff, 0u) << "batch " << i << " hook " << names[k];
    }
  }
}

// forward_batches (the harvest's model source) hands back, in order and bit for bit, what
// forward() gives for each batch, including a smaller last one.
TEST_F(CudaGpt2, ForwardBatchesMatchesForward) {
  RandomGpt2 m(kSmall, 25);
  const std::vector<std::string> names = {"blocks.2.hook_resid_post", "hook_embed"};
  const auto model = cuda::load_gpt2_cuda(m.dir(), names, cuda::Gpt2CudaOptions{});
  std::vector<HookPoint> hooks;
  for (const auto& n : names) hooks.push_back(parse_hook(n, model->n_layers()));
  const int64_t T = 21, maxB = 3, C = kSmall.C, n_batches = 4;
  const std::vector<int32_t> all = random_tokens(n_batches * maxB * T, kSmall.V, 200);
  auto B_of = [&](int64_t i) { return i + 1 == n_batches ? int64_t(2) : maxB; };
  int64_t seen = 0;
  model->forward_batches(
      n_batches, maxB, T, hooks,
      [&](int64_t i, int32_t* tok) {
        std::copy_n(all.begin() + i * maxB * T, B_of(i) * T, tok);
        return B_of(i);
      },
      [&](int64_t i, const std::vector<const float*>& out) {
        EXPECT_EQ(i, seen++);
        const std::vector<int32_t> tok(all.begin() + i * maxB * T, all.begin() + (i * maxB + B_of(i)) * T);
        const auto ref = run(*model, names, tok, B_of(i), T);
        for (size_t k = 0; k < hooks.size(); ++k)
          EXPECT_TRUE(std::equal(ref[k].begin(), ref[k].end(), out[k])) << "batch " << i << " hook " << names[k];
        (void)C;
      });
  EXPECT_EQ(seen, n_batches);
}

// Passes asked for on two non-blocking streams at once, and forward() from the host between
// them, share the model's scratch and cuBLASLt workspace: each must still get exactly the
// activations of its own tokens.
TEST_F(CudaGpt2, ConcurrentPassesOnTwoStreams) {
  RandomGpt2 m(kSmall, 26);
  const std::vector<std::string> names = {"blocks.2.hook_resid_post"};
  const auto model = cuda::load_gpt2_cuda(m.dir(), names, cuda::Gpt2CudaOptions{});
  const std::vector<HookPoint> hooks = {parse_hook(names[0], model->n_layers())};
  const int64_t B = 4, T = 64, N = B * T, C = kSmall.C;
  cudaStream_t st[2];
  for (auto& x : st) SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking));
  std::vector<std::vector<int32_t>> tok;
  std::vector<cuda::DeviceBuffer<int32_t>> dtok(6);
  std::vector<cuda::DeviceBuffer<float>> dout(6);
  for (int i = 0; i < 6; ++i) {
    tok.push_back(random_tokens(N, kSmall.V, 300 + uint64_t(i)));
    dtok[size_t(i)].upload(tok.back(), st[i % 2]);
    dout[size_t(i)].resize(N * C);
  }
  std::vector<float> host(size_t(N * C));
  for (int i = 0; i < 6; ++i) {
    model->forward_device(dtok[size_t(i)].data(), B, T, hooks, {dout[size_t(i)].data()}, st[i % 2]);
    if (i == 2) model->forward(tok[0].data(), B, T, hooks, {host.data()});  // from the host, meanwhile
  }
  for (int i = 0; i < 6; ++i) {
    const auto got = dout[size_t(i)].download(st[i % 2]);
    const auto ref = run(*model, names, tok[size_t(i)], B, T);
    EXPECT_EQ(got, ref[0]) << "pass " << i;
  }
  EXPECT_EQ(host, run(*model, names, tok[0], B, T)[0]);
  for (auto& x : st) cudaStreamDestroy(x);
}

}  // namespace
}  // namespace saepipe
