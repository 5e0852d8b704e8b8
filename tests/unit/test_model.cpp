// pipeline/model: safetensors reader (good files and every kind of bad one), hook names, the
// GPT-2 tokenizer (pre-tokenization and BPE, hand-checked), token inputs, and properties of the
// GPT-2 forward pass (residual identities, causality, batch independence). Numerical parity
// with an independent PyTorch GPT-2 is tests/e2e/test_model_harvest.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/model/bpe_tokenizer.hpp"
#include "pipeline/model/fast_math.hpp"
#include "pipeline/model/safetensors.hpp"
#include "pipeline/model/token_source.hpp"
#include "pipeline/model/transformer.hpp"

namespace fs = std::filesystem;
using namespace saepipe;

namespace {

class ModelDir {
 public:
  ModelDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = "/tmp/saepipe-model-" + std::string(info->name()) + "-" + std::to_string(::getpid());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ModelDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors file from a header object and a data section, written as the format says.
void write_safetensors(const std::string& path, const nlohmann::json& header, const std::string& data) {
  const std::string h = header.dump();
  write_bytes(path, le64(h.size()) + h + data);
}

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

void write_f32_tensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const auto& t : tensors) {
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  write_safetensors(path, header, data);
}

template <class Fn>
void expect_user_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const SaeError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::User) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return;
  }
  ADD_FAILURE() << "no SaeError thrown";
}

}  // namespace

// ---- safetensors ----

TEST(Safetensors, ReadsF32F16Bf16) {
  ModelDir d;
  std::string data;
  const float f32[3] = {1.5f, -2.25f, 3e-3f};
  data.append(reinterpret_cast<const char*>(f32), 12);
  const uint16_t f16[2] = {0x3C00, 0xC000};  // 1.0, -2.0
  data.append(reinterpret_cast<const char*>(f16), 4);
  const uint16_t bf16[2] = {0x3FC0, 0x4049};  // 1.5, 3.140625
  data.append(reinterpret_cast<const char*>(bf16), 4);
  write_safetensors(d / "model.safetensors",
                    {{"a", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 12}}}},
                     {"b", {{"dtype", "F16"}, {"shape", {1, 2}}, {"data_offsets", {12, 16}}}},
                     {"c", {{"dtype", "BF16"}, {"shape", {2}}, {"data_offsets", {16, 20}}}},
                     {"__metadata__", {{"format", "pt"}}}},
                    data);
  Checkpoint ck(d.path());
  EXPECT_EQ(ck.load("a", {3}), (std::vector<float>{1.5f, -2.25f, 3e-3f}));
  EXPECT_EQ(ck.load("b", {1, 2}), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(ck.load("c", {2}), (std::vector<float>{1.5f, 3.140625f}));
  expect_user_error([&] { ck.load("b", {2}); }, {"model.safetensors", "tensor b has shape [1, 2]", "implies [2]"});
  expect_user_error([&] { ck.load("zz", {1}); }, {"checkpoint lacks tensor zz"});
}

TEST(Safetensors, BadFilesAreOneLineUserErrors) {
  ModelDir d;
  const std::string p = d / "x.safetensors";
  write_bytes(p, "abc");
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "truncated"});
  write_bytes(p, le64(1000) + "{}");
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "header length 1000"});
  write_bytes(p, le64(5) + "{\"a\":");
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "not valid JSON"});
  write_safetensors(p, {{"w", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}}}, std::string(8, '\0'));
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "tensor w", "beyond the data section of 8 bytes"});
  write_safetensors(p, {{"w", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 16}}}}}, std::string(16, '\0'));
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "tensor w", "16 bytes for shape [3] of F32 (12 expected)"});
  write_safetensors(p, {{"w", {{"dtype", "Q4"}, {"shape", {2}}, {"data_offsets", {0, 2}}}}}, std::string(2, '\0'));
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "tensor w", "unsupported dtype Q4"});
  write_safetensors(p, {{"w", {{"dtype", "F32"}, {"shape", {-1}}, {"data_offsets", {0, 4}}}}}, std::string(4, '\0'));
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "bad shape"});
  write_safetensors(p, {{"w", {{"dtype", "F32"}, {"shape", {1}}}}}, std::string(4, '\0'));
  expect_user_error([&] { SafetensorsFile f(p); }, {p, "data_offsets"});
  expect_user_error([&] { Checkpoint c(d.path()); }, {d.path(), "no model.safetensors"});
}

TEST(Safetensors, ShardedIndex) {
  ModelDir d;
  write_f32_tensors(d / "model-00001-of-00002.safetensors", {{"a", {2}, {1, 2}}});
  write_f32_tensors(d / "model-00002-of-00002.safetensors", {{"b", {1}, {7}}});
  write_bytes(d / "model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  Checkpoint ck(d.path());
  EXPECT_EQ(ck.load("a", {2}), (std::vector<float>{1, 2}));
  EXPECT_EQ(ck.load("b", {1}), (std::vector<float>{7}));
  write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": "model-00002-of-00002.safetensors"}})");
  expect_user_error([&] { Checkpoint c(d.path()); }, {"model-00002-of-00002.safetensors: lacks tensor a"});
  write_bytes(d / "model.safetensors.index.json", R"({"weight_map": {"a": "gone.safetensors"}})");
  expect_user_error([&] { Checkpoint c(d.path()); }, {"lists gone.safetensors, which does not exist"});
}

// ---- hooks ----

TEST(Hooks, ParsesTransformerLensNames) {
  EXPECT_EQ(parse_hook("hook_embed", 2).kind, HookKind::Embed);
  EXPECT_EQ(parse_hook("ln_final.hook_normalized", 2).kind, HookKind::LnFinalNormalized);
  HookPoint h = parse_hook("blocks.11.hook_resid_mid", 12);
  EXPECT_EQ(h.kind, HookKind::ResidMid);
  EXPECT_EQ(h.layer, 11);
  expect_user_error([] { parse_hook("blocks.12.hook_resid_post", 12); }, {"layer 12 does not exist", "12 layers"});
  expect_user_error([] { parse_hook("blocks.x.hook_resid_post", 12); }, {"unknown hook \"blocks.x.hook_resid_post\""});
  expect_user_error([] { parse_hook("blocks.1.hook_z", 12); }, {"unknown hook"});
  EXPECT_EQ(layers_needed({parse_hook("blocks.3.hook_attn_out", 12), parse_hook("hook_embed", 12)}, 12), 4);
  EXPECT_EQ(layers_needed({parse_hook("ln_final.hook_normalized", 12)}, 12), 12);
  EXPECT_EQ(layers_needed({parse_hook("hook_pos_embed", 12)}, 12), 0);
}

// ---- tokenizer ----

TEST(Gpt2Tokenizer, PretokenizesLikeGpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(gpt2_pretokenize("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(gpt2_pretokenize("I'm here's don't"), (V{"I", "'m", " here", "'s", " don", "'t"}));
  EXPECT_EQ(gpt2_pretokenize("they'll we've you're I'D"), (V{"they", "'ll", " we", "'ve", " you", "'re", " I", "'", "D"}));
  EXPECT_EQ(gpt2_pretokenize("a  b"), (V{"a", " ", " b"}));
  EXPECT_EQ(gpt2_pretokenize("x\n\ny"), (V{"x", "\n", "\n", "y"}));
  EXPECT_EQ(gpt2_pretokenize("end  "), (V{"end", "  "}));
  EXPECT_EQ(gpt2_pretokenize("123abc 4"), (V{"123", "abc", " 4"}));
  EXPECT_EQ(gpt2_pretokenize("  !!?"), (V{" ", " !!?"}));
  EXPECT_EQ(gpt2_pretokenize("caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC"), (V{"caf\xC3\xA9", " \xE6\x9D\xB1\xE4\xBA\xAC"}));
  EXPECT_EQ(gpt2_pretokenize("e\xCC\x81"), (V{"e", "\xCC\x81"}));                 // combining mark: not \p{L}
  EXPECT_EQ(gpt2_pretokenize("x\xC2\xB2\xC2\xBD"), (V{"x", "\xC2\xB2\xC2\xBD"}));  // x²½: ² and ½ are \p{N}
  EXPECT_EQ(gpt2_pretokenize("a\xC2\xA0" "b"), (V{"a", "\xC2\xA0", "b"}));          // NBSP is \s
  EXPECT_EQ(gpt2_pretokenize(""), V{});
  expect_user_error([] { gpt2_pretokenize("ok\xC3(", "in.txt"); }, {"in.txt: invalid UTF-8 at byte 2"});
  expect_user_error([] { gpt2_pretokenize("\xED\xA0\x80", "in.txt"); }, {"invalid UTF-8 at byte 0"});  // surrogate
}

TEST(Gpt2Tokenizer, MergesByRank) {
  ModelDir d;
  // "Ġ" (U+0120) is the byte-level symbol of a space.
  write_bytes(d / "vocab.json", R"({"h":0,"e":1,"l":2,"o":3,"\u0120":4,"he":5,"ll":6,"hell":7,"\u0120h":8})");
  write_bytes(d / "merges.txt", "#version: 0.2\nh e\nl l\nhe ll\n\xC4\xA0 h\n");
  Gpt2Tokenizer tok(d.path());
  // "hello" -> h e l l o -> he l l o -> he ll o -> hell o; " hell" -> Ġ h e l l -> Ġ he l l ->
  // Ġ he ll -> Ġ hell (rank of "Ġ h" comes too late: h is already merged into he).
  EXPECT_EQ(tok.encode("hello hell"), (std::vector<int32_t>{7, 3, 4, 7}));
  EXPECT_EQ(tok.encode(" h"), (std::vector<int32_t>{8}));
  expect_user_error([&] { tok.encode("z", "doc.txt"); }, {"doc.txt", "lacks the BPE symbol \"z\""});
  write_bytes(d / "merges.txt", "#version: 0.2\nh e x\n");
  expect_user_error([&] { Gpt2Tokenizer t(d.path()); }, {"merges.txt:2", "two symbols"});
  fs::remove(d / "vocab.json");
  expect_user_error([&] { Gpt2Tokenizer t(d.path()); }, {"vocab.json: not found"});
}

// ---- token inputs ----

TEST(TokenSource, FormatsAndErrors) {
  ModelDir d;
  const std::vector<uint16_t> ids = {5, 0, 65535, 7, 9};
  std::string u16(reinterpret_cast<const char*>(ids.data()), ids.size() * 2);
  int32_t header[256] = {20240520, 1, 5};
  write_bytes(d / "a.bin", std::string(reinterpret_cast<const char*>(header), 1024) + u16);
  write_bytes(d / "raw.bin", u16);
  auto read_all = [](const TokenSource& s) {
    std::vector<int32_t> v(size_t(s.size()));
    s.read(0, s.size(), v.data());
    return v;
  };
  const std::vector<int32_t> want = {5, 0, 65535, 7, 9};
  auto llmc = open_token_source({d / "a.bin"});
  EXPECT_EQ(llmc->format(), "llmc");
  EXPECT_EQ(read_all(*llmc), want);
  auto raw = open_token_source({d / "raw.bin"});
  EXPECT_EQ(raw->format(), "uint16");
  EXPECT_EQ(read_all(*raw), want);
  int32_t part[2];
  raw->read(2, 2, part);
  EXPECT_EQ(part[0], 65535);
  EXPECT_EQ(part[1], 7);

  // .npy v1.0 of int32, shape (5,)
  std::string npy_header = "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }";
  npy_header += std::string(128 - 10 - npy_header.size() - 1, ' ') + "\n";  // data starts at byte 128
  std::string npy = std::string("\x93NUMPY\x01\x00", 8) + char(npy_header.size()) + '\0' + npy_header;
  const std::vector<int32_t> i32(want.begin(), want.end());
  write_bytes(d / "t.npy", npy + std::string(reinterpret_cast<const char*>(i32.data()), 20));
  EXPECT_EQ(read_all(*open_token_source({d / "t.npy"})), want);
  write_bytes(d / "short.npy", npy + std::string(reinterpret_cast<const char*>(i32.data()), 16));
  expect_user_error([&] { open_token_source({d / "short.npy"}); }, {"short.npy", "needs 20 data bytes but the file has 16"});
  // A shape no int64 holds (found by fuzz_tokens), or one past the file's size.
  for (const char* shape : {"(99999999999999999999,)", "(4294967296, 4294967296)", "(-5,)"}) {
    std::string big = npy;
    big.replace(big.find("(5,)"), 4, shape);
    write_bytes(d / "big.npy", big + std::string(20, '\0'));
    expect_user_error([&] { open_token_source({d / "big.npy"}); }, {"big.npy", "bad .npy shape"});
  }
  std::string f4 = npy;
  f4.replace(f4.find("<i4"), 3, "<f4");
  write_bytes(d / "f.npy", f4 + std::string(20, '\0'));
  expect_user_error([&] { open_token_source({d / "f.npy"}); }, {"f.npy", "dtype <f4 is not supported"});

  header[0] = 1234;
  write_bytes(d / "bad.bin", std::string(reinterpret_cast<const char*>(header), 1024) + u16);
  expect_user_error([&] { open_token_source({d / "bad.bin", "llmc"}); }, {"bad.bin", "not an llm.c token file"});
  header[0] = 20240520;
  header[2] = 6;
  write_bytes(d / "count.bin", std::string(reinterpret_cast<const char*>(header), 1024) + u16);
  expect_user_error([&] { open_token_source({d / "count.bin"}); }, {"count.bin", "header says 6 tokens", "1034 bytes"});
  write_bytes(d / "odd.bin", "abc");
  expect_user_error([&] { open_token_source({d / "odd.bin"}); }, {"odd.bin", "odd size"});
  expect_user_error([&] { open_token_source({d / "none.bin"}); }, {"none.bin: token file not found"});
  write_bytes(d / "t.parquet", "x");
  expect_user_error([&] { open_token_source({d / "t.parquet"}); }, {"t.parquet", "set harvest.token_format"});

  h5::silence_errors();
  {
    h5::File f = h5::create_file(d / "t.h5");
    f.create_dataset("ids", h5::Type::Int64, {5}).write(std::vector<int64_t>(want.begin(), want.end()).data());
    f.create_dataset("x", h5::Type::Float32, {2}).write(std::vector<float>{1, 2}.data());
  }
  EXPECT_EQ(read_all(*open_token_source({d / "t.h5", "auto", "ids"})), want);
  expect_user_error([&] { open_token_source({d / "t.h5", "hdf5", "x"}); }, {"t.h5", "float32", "integer type"});
  expect_user_error([&] { open_token_source({d / "t.h5", "hdf5", "tokens"}); }, {"t.h5", "no dataset \"tokens\""});
}

TEST(FastMath, TanhWithin4e7) {
  double worst = 0;
  for (double v = -12; v <= 12; v += 1e-4) {
    const float x = float(v);
    worst = std::max(worst, std::abs(double(fast_tanh(x)) - std::tanh(double(x))));
  }
  EXPECT_LT(worst, 4e-7);
  EXPECT_EQ(fast_tanh(1e-5f), 1e-5f);
  EXPECT_EQ(fast_tanh(50.0f), fast_tanh(8.0f));
}

// ---- GPT-2 forward: properties (numerical parity is the e2e test against PyTorch) ----

namespace {

// A random GPT-2 (C = 16, 2 heads, 2 layers, vocab 20, 8 positions) in d.
void write_random_gpt2(const ModelDir& d) {
  const int64_t C = 16, V = 20, P = 8, L = 2;
  write_bytes(d / "config.json", R"({"model_type": "gpt2", "n_embd": 16, "n_head": 2, "n_layer": 2,
      "n_positions": 8, "vocab_size": 20, "bos_token_id": 19, "eos_token_id": 19})");
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0, 0.3f);
  auto t = [&](const std::string& name, std::vector<int64_t> shape, float base = 0) {
    int64_t k = 1;
    for (int64_t s : shape) k *= s;
    NamedTensor x{"transformer." + name, shape, std::vector<float>(size_t(k))};
    for (float& v : x.values) v = base + n(rng);
    return x;
  };
  std::vector<NamedTensor> ts = {t("wte.weight", {V, C}), t("wpe.weight", {P, C}), t("ln_f.weight", {C}, 1),
                                 t("ln_f.bias", {C})};
  for (int64_t l = 0; l < L; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    for (auto x : {t(h + "ln_1.weight", {C}, 1), t(h + "ln_1.bias", {C}), t(h + "attn.c_attn.weight", {C, 3 * C}),
                   t(h + "attn.c_attn.bias", {3 * C}), t(h + "attn.c_proj.weight", {C, C}), t(h + "attn.c_proj.bias", {C}),
                   t(h + "ln_2.weight", {C}, 1), t(h + "ln_2.bias", {C}), t(h + "mlp.c_fc.weight", {C, 4 * C}),
                   t(h + "mlp.c_fc.bias", {4 * C}), t(h + "mlp.c_proj.weight", {4 * C, C}), t(h + "mlp.c_proj.bias", {C})})
      ts.push_back(std::move(x));
  }
  write_f32_tensors(d / "model.safetensors", ts);
}

const std::vector<std::string> kAllHooks = {
    "hook_embed", "hook_pos_embed", "blocks.1.hook_resid_pre", "blocks.1.hook_attn_out", "blocks.1.hook_resid_mid",
    "blocks.1.hook_mlp_out", "blocks.1.hook_resid_post", "ln_final.hook_normalized"};

std::vector<std::vector<float>> run(const TransformerModel& m, const std::vector<int32_t>& tokens, int64_t B, int64_t T) {
  std::vector<HookPoint> hooks;
  for (const auto& h : kAllHooks) hooks.push_back(parse_hook(h, m.n_layers()));
  std::vector<std::vector<float>> out(hooks.size(), std::vector<float>(size_t(B * T * m.d_model())));
  std::vector<float*> ptr;
  for (auto& o : out) ptr.push_back(o.data());
  m.forward(tokens.data(), B, T, hooks, ptr);
  return out;
}

}  // namespace

TEST(Gpt2Forward, ResidualIdentitiesCausalityAndBatchIndependence) {
  ModelDir d;
  write_random_gpt2(d);
  auto m = load_transformer(d.path(), kAllHooks);
  EXPECT_EQ(m->d_model(), 16);
  EXPECT_EQ(m->bos_token(), 19);
  const int64_t T = 8, C = 16;
  const std::vector<int32_t> a = {19, 3, 5, 7, 11, 2, 0, 13}, b = {19, 3, 5, 7, 11, 4, 4, 1};
  const auto ra = run(*m, a, 1, T), rb = run(*m, b, 1, T);
  // resid_mid = resid_pre + attn_out and resid_post = resid_mid + mlp_out.
  for (int64_t i = 0; i < T * C; ++i) {
    EXPECT_FLOAT_EQ(ra[4][size_t(i)], ra[2][size_t(i)] + ra[3][size_t(i)]);
    EXPECT_FLOAT_EQ(ra[6][size_t(i)], ra[4][size_t(i)] + ra[5][size_t(i)]);
  }
  // Sequences a and b agree on positions 0..4: so must every hook there (causal), and differ at 5.
  for (size_t h = 0; h < kAllHooks.size(); ++h) {
    for (int64_t i = 0; i < 5 * C; ++i) EXPECT_NEAR(ra[h][size_t(i)], rb[h][size_t(i)], 1e-5) << kAllHooks[h];
    if (h != 1) {  // positional embeddings do not depend on the token
      double diff = 0;
      for (int64_t i = 5 * C; i < 6 * C; ++i) diff += std::abs(ra[h][size_t(i)] - rb[h][size_t(i)]);
      EXPECT_GT(diff, 1e-3) << kAllHooks[h];
    }
  }
  // Two sequences in one batch give the rows of each run alone.
  std::vector<int32_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  const auto rab = run(*m, ab, 2, T);
  for (size_t h = 0; h < kAllHooks.size(); ++h)
    for (int64_t i = 0; i < T * C; ++i) {
      EXPECT_NEAR(rab[h][size_t(i)], ra[h][size_t(i)], 1e-5);
      EXPECT_NEAR(rab[h][size_t(T * C + i)], rb[h][size_t(i)], 1e-5);
    }
  // ln_final.hook_normalized is the LayerNorm before its affine map: zero mean, unit variance.
  for (int64_t t = 0; t < T; ++t) {
    double s = 0, q = 0;
    for (int64_t c = 0; c < C; ++c) s += ra[7][size_t(t * C + c)];
    for (int64_t c = 0; c < C; ++c) q += std::pow(ra[7][size_t(t * C + c)] - s / C, 2);
    EXPECT_NEAR(s / C, 0, 1e-5);
    EXPECT_NEAR(q / C, 1, 1e-3);
  }
}

TEST(Gpt2Forward, ConfigErrors) {
  ModelDir d;
  write_random_gpt2(d);
  write_bytes(d / "config.json", R"({"model_type": "bloom", "hidden_size": 16})");
  expect_user_error([&] { load_transformer(d.path(), {"hook_embed"}); },
                    {"config.json", "model_type \"bloom\" is not supported", "gpt2, gpt_neox, llama, mistral"});
  write_bytes(d / "config.json", R"({"model_type": "llama", "hidden_size": 16})");
  expect_user_error([&] { load_transformer(d.path(), {"hook_embed"}); }, {"config.json: lacks \"num_hidden_layers\""});
  write_bytes(d / "config.json", R"({"model_type": "gpt2", "n_embd": 16, "n_head": 3, "n_layer": 2, "n_positions": 8, "vocab_size": 20})");
  expect_user_error([&] { load_transformer(d.path(), {"hook_embed"}); }, {"config.json", "not a multiple of n_head 3"});
  write_bytes(d / "config.json", R"({"model_type": "gpt2", "n_head": 2, "n_layer": 2, "n_positions": 8, "vocab_size": 20})");
  expect_user_error([&] { load_transformer(d.path(), {"hook_embed"}); }, {"config.json: lacks \"n_embd\""});
  write_bytes(d / "config.json", R"({"model_type": "gpt2", "n_embd": 16, "n_head": 2, "n_layer": 2, "n_positions": 8, "vocab_size": 21})");
  expect_user_error([&] { load_transformer(d.path(), {"hook_embed"}); }, {"tensor transformer.wte.weight has shape [20, 16]", "[21, 16]"});
}

// ---- the harvest keys of the job file ----

TEST(HarvestJob, ModelSourceKeysAndDefaults) {
  const Job j = parse_job("[run]\nname = \"x\"\n[harvest]\nsource = \"model\"\nmodel = \"m\"\ntokens = \"t.bin\"\n", "j.toml");
  EXPECT_EQ(j.harvest.source, "model");
  EXPECT_EQ(j.harvest.model, "m");
  EXPECT_EQ(j.harvest.tokens, "t.bin");
  EXPECT_EQ(j.harvest.token_format, "auto");
  EXPECT_EQ(j.harvest.tokens_dataset, "tokens");
  EXPECT_EQ(j.harvest.prepend_bos, std::optional<bool>(true));
  for (const char* v : {"true", "false"}) {
    const Job b = parse_job(std::string("[run]\nname = \"x\"\n[harvest]\nprepend_bos = ") + v + "\n", "j.toml");
    EXPECT_EQ(b.harvest.prepend_bos, std::optional<bool>(std::string(v) == "true"));
  }
  const Job a = parse_job("[run]\nname = \"x\"\n[harvest]\nprepend_bos = \"auto\"\n", "j.toml");
  EXPECT_FALSE(a.harvest.prepend_bos.has_value());  // "auto": the model's tokenizer decides
  EXPECT_NE(a.resolved_toml.find("prepend_bos = 'auto'"), std::string::npos) << a.resolved_toml;
  expect_user_error([] { parse_job("[run]\nname = \"x\"\n[harvest]\nprepend_bos = \"yes\"\n", "j.toml"); },
                    {"j.toml:4", "harvest.prepend_bos", "expected one of true, false, \"auto\", got string \"yes\""});
  expect_user_error([] { parse_job("[run]\nname = \"x\"\n[harvest]\nprepend_bos = 1\n", "j.toml"); },
                    {"harvest.prepend_bos", "got integer 1"});
  EXPECT_FALSE(j.harvest.exclude_bos);
  EXPECT_EQ(j.harvest.batch_sequences, 8);
  expect_user_error([] { parse_job("[run]\nname = \"x\"\n[harvest]\nsource = \"model\"\ntokens = \"t\"\n", "j.toml"); },
                    {"j.toml", "harvest.model", "needs a model directory"});
  expect_user_error([] { parse_job("[run]\nname = \"x\"\n[harvest]\nsource = \"model\"\nmodel = \"m\"\n", "j.toml"); },
                    {"j.toml", "harvest.tokens", "needs a token file"});
  expect_user_error([] { parse_job("[run]\nname = \"x\"\n[harvest]\ntoken_format = \"csv\"\n", "j.toml"); },
                    {"j.toml:4", "harvest.token_format", "\"csv\" is not one of"});
  expect_user_error([] { parse_job("[run]\nname = \"x\"\n[harvest]\nexclude_bos = true\ncontext = 1\nshard_tokens = 4\nn_tokens = 4\n", "j.toml"); },
                    {"harvest.exclude_bos", "context >= 2"});
}
