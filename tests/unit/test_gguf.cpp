// pipeline/model/gguf: the GGUF reader on files written byte by byte here (metadata of every
// type, tensors of every readable type with hand-computed dequantized values), and every kind of
// bad file as a one-line user error (including every truncation of a good file); the GGUF model's
// config, tensor names and Q/K rows against llama.cpp's converter permutation. Parity with
// gguf-py's reader and dequantize on its own files and on SmolLM2's is tests/e2e/test_gguf.sh;
// with transformers running the same file, tests/e2e/test_gguf_model.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <tuple>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/float16.hpp"
#include "pipeline/model/ggml_types.hpp"
#include "pipeline/model/gguf.hpp"
#include "pipeline/model/gguf_llama.hpp"
#include "pipeline/model/gguf_model.hpp"
#include "pipeline/model/gguf_tokenizer.hpp"

namespace fs = std::filesystem;
using namespace saepipe;

namespace {

std::string scratch(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = "/tmp/saepipe-gguf-" + std::string(info->name()) + "-" + std::to_string(::getpid());
  fs::create_directories(dir);
  return dir + "/" + name;
}

struct ScratchCleanup {
  ~ScratchCleanup() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::error_code ec;
    fs::remove_all("/tmp/saepipe-gguf-" + std::string(info->name()) + "-" + std::to_string(::getpid()), ec);
  }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

template <class T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
std::string str(const std::string& s) { return le<uint64_t>(s.size()) + s; }

// A GGUF file assembled as the format says (little-endian, version 3 unless told).
struct Writer {
  uint32_t version = 3;
  uint64_t alignment = 32;
  std::vector<std::string> kvs;
  struct T { std::string name; std::vector<uint64_t> ne; uint32_t type; std::string data; };
  std::vector<T> tensors;

  void kv(const std::string& key, GgufType type, const std::string& value_bytes) {
    kvs.push_back(str(key) + le<uint32_t>(uint32_t(type)) + value_bytes);
  }
  void kv_u32(const std::string& key, uint32_t v) { kv(key, GgufType::U32, le(v)); }
  void kv_str(const std::string& key, const std::string& v) { kv(key, GgufType::String, str(v)); }
  void kv_f32(const std::string& key, float v) { kv(key, GgufType::F32, le(v)); }
  void kv_strings(const std::string& key, const std::vector<std::string>& v) {
    std::string b = le<uint32_t>(uint32_t(GgufType::String)) + le<uint64_t>(v.size());
    for (const auto& s : v) b += str(s);
    kv(key, GgufType::Array, b);
  }
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data) {
    tensors.push_back({name, std::move(ne), type, std::move(data)});
  }
  std::string bytes(std::function<void(std::vector<uint64_t>&)> edit_offsets = {}) const {
    std::string out = "GGUF" + le(version) + le<uint64_t>(tensors.size()) + le<uint64_t>(kvs.size());
    for (const auto& k : kvs) out += k;
    std::vector<uint64_t> offsets;
    uint64_t at = 0;
    for (const auto& t : tensors) {
      offsets.push_back(at);
      at += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    if (edit_offsets) edit_offsets(offsets);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      out += str(t.name) + le<uint32_t>(uint32_t(t.ne.size()));
      for (uint64_t d : t.ne) out += le(d);
      out += le(t.type) + le(offsets[i]);
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    for (const auto& t : tensors) {
      out += t.data;
      out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    }
    return out;
  }
};

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

std::string f16(float v) { return le<uint16_t>(float_to_f16(v)); }

}  // namespace

TEST(Gguf, MetadataOfEveryType) {
  ScratchCleanup cleanup;
  Writer w;
  w.kv("u8", GgufType::U8, le<uint8_t>(200));
  w.kv("i8", GgufType::I8, le<int8_t>(-100));
  w.kv("u16", GgufType::U16, le<uint16_t>(60000));
  w.kv("i16", GgufType::I16, le<int16_t>(-30000));
  w.kv("u32", GgufType::U32, le<uint32_t>(4000000000u));
  w.kv("i32", GgufType::I32, le<int32_t>(-2000000000));
  w.kv("f32", GgufType::F32, le<float>(0.1f));
  w.kv("bool", GgufType::Bool, le<uint8_t>(1));
  w.kv("str", GgufType::String, str("héllo ▁world"));
  w.kv("u64", GgufType::U64, le<uint64_t>(uint64_t(1) << 63));
  w.kv("i64", GgufType::I64, le<int64_t>(-(int64_t(1) << 40)));
  w.kv("f64", GgufType::F64, le<double>(1e-300));
  w.kv("ints", GgufType::Array, le<uint32_t>(uint32_t(GgufType::I16)) + le<uint64_t>(3) + le<int16_t>(-1) + le<int16_t>(2) + le<int16_t>(-3));
  w.kv("floats", GgufType::Array, le<uint32_t>(uint32_t(GgufType::F32)) + le<uint64_t>(2) + le<float>(1.5f) + le<float>(-2.5f));
  w.kv_strings("strs", {"a", "", "b c"});
  // An array of two arrays: [u8 [7], string ["x", "y"]].
  w.kv("nested", GgufType::Array,
       le<uint32_t>(uint32_t(GgufType::Array)) + le<uint64_t>(2) + le<uint32_t>(uint32_t(GgufType::U8)) + le<uint64_t>(1) +
           le<uint8_t>(7) + le<uint32_t>(uint32_t(GgufType::String)) + le<uint64_t>(2) + str("x") + str("y"));
  w.kv("empty", GgufType::Array, le<uint32_t>(uint32_t(GgufType::U32)) + le<uint64_t>(0));
  const std::string p = scratch("m.gguf");
  write_bytes(p, w.bytes());
  GgufFile f(p);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 17u);
  EXPECT_EQ(f.metadata()[0].first, "u8");  // file order kept
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("i32"), -2000000000LL);
  EXPECT_EQ(f.get_float("f32"), double(0.1f));
  EXPECT_EQ(f.get_bool_opt("bool"), std::optional<bool>(true));
  EXPECT_EQ(f.get_string("str"), "héllo ▁world");
  EXPECT_EQ(f.find("u64")->unsigned_at(0), uint64_t(1) << 63);
  expect_user_error([&] { f.get_int("u64"); }, {p, "'u64'", "out of range"});
  EXPECT_EQ(f.get_int("i64"), -(int64_t(1) << 40));
  EXPECT_EQ(f.get_float("f64"), 1e-300);
  EXPECT_EQ(f.get_int_array("ints"), (std::vector<int64_t>{-1, 2, -3}));
  EXPECT_EQ(f.get_float_array("floats"), (std::vector<double>{1.5, -2.5}));
  EXPECT_EQ(f.get_string_array("strs"), (std::vector<std::string>{"a", "", "b c"}));
  const GgufValue* n = f.find("nested");
  ASSERT_TRUE(n && n->is_array() && n->element == GgufType::Array && n->items.size() == 2);
  EXPECT_EQ(n->items[0].integer_at(0), 7);
  EXPECT_EQ(n->items[1].strings, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(f.get_int_array("empty").empty());
  EXPECT_FALSE(f.get_int_opt("absent").has_value());
  expect_user_error([&] { f.get_int("absent"); }, {p, "'absent' is missing"});
  expect_user_error([&] { f.get_int("str"); }, {p, "'str' has type string, an integer expected"});
  expect_user_error([&] { f.get_string("ints"); }, {p, "'ints' has type array of i16, string expected"});
  expect_user_error([&] { f.get_float("u8"); }, {p, "'u8'", "f32 or f64 expected"});
  EXPECT_TRUE(f.tensors().empty());
}

TEST(Gguf, DequantizesEveryReadableTypeByHand) {
  ScratchCleanup cleanup;
  Writer w;
  w.alignment = 64;
  w.kv_u32("general.alignment", 64);
  // F32 [2,3] (ne = {3, 2}), F16, BF16.
  std::string f32;
  for (float v : {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 1e-3f}) f32 += le(v);
  w.tensor("f32", {3, 2}, 0, f32);
  w.tensor("f16", {2}, 1, le<uint16_t>(0x3C00) + le<uint16_t>(0xC500));    // 1.0, -5.0
  w.tensor("bf16", {2}, 30, le<uint16_t>(0x3FC0) + le<uint16_t>(0xC049));  // 1.5, -3.140625
  // Q8_0: d = 0.5, q = -16..15.
  std::string q8 = f16(0.5f);
  for (int j = 0; j < 32; ++j) q8 += char(int8_t(j - 16));
  w.tensor("q8_0", {32}, 8, q8);
  // Q4_0: d = 0.25, byte j = low nibble j, high nibble 15 - j.
  std::string q40 = f16(0.25f);
  for (int j = 0; j < 16; ++j) q40 += char(uint8_t(j | ((15 - j) << 4)));
  // Q4_1: d = 2, m = -1, same nibbles; two rows of one block each.
  std::string q41;
  for (int r = 0; r < 2; ++r) {
    q41 += f16(2.0f) + f16(r == 0 ? -1.0f : 10.0f);
    for (int j = 0; j < 16; ++j) q41 += char(uint8_t(j | ((15 - j) << 4)));
  }
  w.tensor("q4_0", {32, 1}, 2, q40);
  w.tensor("q4_1", {32, 2}, 3, q41);
  const std::string p = scratch("t.gguf");
  write_bytes(p, w.bytes());
  GgufFile f(p);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0);
  EXPECT_EQ(f.load("f32", {2, 3}), (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 1e-3f}));
  EXPECT_EQ(f.load("f16", {2}), (std::vector<float>{1.0f, -5.0f}));
  EXPECT_EQ(f.load("bf16", {2}), (std::vector<float>{1.5f, -3.140625f}));
  std::vector<float> want(32);
  for (int j = 0; j < 32; ++j) want[j] = 0.5f * float(j - 16);
  EXPECT_EQ(f.load("q8_0", {32}), want);
  for (int j = 0; j < 16; ++j) {
    want[j] = 0.25f * float(j - 8);
    want[j + 16] = 0.25f * float(15 - j - 8);
  }
  EXPECT_EQ(f.load("q4_0", {1, 32}), want);
  std::vector<float> want41(64);
  for (int r = 0; r < 2; ++r)
    for (int j = 0; j < 16; ++j) {
      want41[r * 32 + j] = 2.0f * float(j) + (r == 0 ? -1.0f : 10.0f);
      want41[r * 32 + j + 16] = 2.0f * float(15 - j) + (r == 0 ? -1.0f : 10.0f);
    }
  EXPECT_EQ(f.load("q4_1", {2, 32}), want41);
  EXPECT_EQ(f.find_tensor("q4_1")->n_bytes, 40);
  EXPECT_EQ(f.find_tensor("q4_1")->shape(), (std::vector<int64_t>{2, 32}));
  expect_user_error([&] { f.load("q4_1", {32, 2}); }, {p, "'q4_1' has shape [2, 32]", "implies [32, 2]"});
  expect_user_error([&] { f.load("nope", {1}); }, {p, "lacks tensor 'nope'"});
}

TEST(Gguf, UnreadableTypesAreNamed) {
  ScratchCleanup cleanup;
  Writer w;
  w.tensor("k", {256}, 14, std::string(210, '\0'));  // Q6_K: known size, not readable
  const std::string p = scratch("k.gguf");
  write_bytes(p, w.bytes());
  GgufFile f(p);
  EXPECT_EQ(f.find_tensor("k")->n_bytes, 210);
  expect_user_error([&] { f.load("k", {256}); }, {p, "'k' has type Q6_K", "cannot be read"});
}

TEST(Gguf, VersionTwoReadsAsThree) {
  ScratchCleanup cleanup;
  Writer w;
  w.version = 2;
  w.kv_str("general.architecture", "llama");
  w.tensor("x", {4}, 0, std::string(16, '\0'));
  const std::string p = scratch("v2.gguf");
  write_bytes(p, w.bytes());
  GgufFile f(p);
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.load("x", {4}), std::vector<float>(4, 0.0f));
}

TEST(Gguf, BadFilesAreOneLineUserErrors) {
  ScratchCleanup cleanup;
  const std::string p = scratch("bad.gguf");
  auto bad = [&](const std::string& bytes, const std::vector<std::string>& parts) {
    write_bytes(p, bytes);
    std::vector<std::string> all = parts;
    all.insert(all.begin(), p);
    expect_user_error([&] { GgufFile f(p); }, all);
  };
  Writer good;
  good.kv_str("general.architecture", "llama");
  good.tensor("a", {32}, 8, std::string(34, '\0'));
  good.tensor("b", {2, 2}, 0, std::string(16, '\0'));

  bad("GGU", {"truncated", "shorter than the 24-byte header"});
  bad(std::string("GGML") + std::string(40, '\0'), {"not a GGUF file", "'GGML'"});
  { Writer w = good; w.version = 1; bad(w.bytes(), {"version 1 is not supported"}); }
  { Writer w = good; w.version = 4; bad(w.bytes(), {"version 4 is not supported"}); }
  { Writer w = good; w.version = 3u << 24; bad(w.bytes(), {"big-endian"}); }
  bad("GGUF" + le<uint32_t>(3) + le<uint64_t>(0) + le<uint64_t>(uint64_t(1) << 60), {"claims", "metadata entries"});
  bad("GGUF" + le<uint32_t>(3) + le<uint64_t>(uint64_t(1) << 60) + le<uint64_t>(0), {"claims", "tensors"});
  { Writer w; w.kv("s", GgufType::String, le<uint64_t>(1000) + "abc"); bad(w.bytes(), {"truncated", "metadata 's'", "1000 bytes"}); }
  { Writer w; w.kv("a", GgufType::Array, le<uint32_t>(4) + le<uint64_t>(uint64_t(1) << 62)); bad(w.bytes(), {"metadata 'a'", "claims 4611686018427387904 elements"}); }
  { Writer w; w.kv("a", GgufType::Array, le<uint32_t>(8) + le<uint64_t>(uint64_t(1) << 40)); bad(w.bytes(), {"metadata 'a'", "claims"}); }
  { Writer w; w.kv("t", GgufType(13), le<uint32_t>(0)); bad(w.bytes(), {"metadata 't' has unknown value type 13"}); }
  { Writer w; w.kv("a", GgufType::Array, le<uint32_t>(77) + le<uint64_t>(1)); bad(w.bytes(), {"metadata 'a' element has unknown value type 77"}); }
  { Writer w; w.kv_u32("k", 1); w.kv_u32("k", 2); bad(w.bytes(), {"metadata key 'k' appears twice"}); }
  { Writer w; w.kv_u32("", 1); bad(w.bytes(), {"metadata key 0 is empty"}); }
  {
    std::string deep = le<uint32_t>(uint32_t(GgufType::Array)) + le<uint64_t>(1);
    for (int i = 0; i < 20; ++i) deep += le<uint32_t>(uint32_t(GgufType::Array)) + le<uint64_t>(1);
    deep += le<uint32_t>(uint32_t(GgufType::U8)) + le<uint64_t>(0);
    Writer w; w.kv("deep", GgufType::Array, deep);
    bad(w.bytes() + std::string(64, '\0'), {"nests arrays deeper than 8"});
  }
  { Writer w; w.kv("general.alignment", GgufType::U64, le<uint64_t>(32)); bad(w.bytes(), {"general.alignment' has type u64, u32 expected"}); }
  { Writer w; w.kv_u32("general.alignment", 48); bad(w.bytes(), {"general.alignment 48 is not a power of two"}); }
  { Writer w = good; w.tensors[1].name = "a"; bad(w.bytes(), {"tensor 'a' appears twice"}); }
  { Writer w = good; w.tensors[1].ne = {1, 1, 1, 1, 1}; bad(w.bytes(), {"tensor 'b' has 5 dimensions"}); }
  { Writer w = good; w.tensors[1].ne = {uint64_t(1) << 50}; bad(w.bytes(), {"tensor 'b' has dimension", "too large"}); }
  { Writer w = good; w.tensors[1].ne = {uint64_t(1) << 30, uint64_t(1) << 30}; bad(w.bytes(), {"tensor 'b' has shape", "too many elements"}); }
  { Writer w = good; w.tensors[1].type = 4; bad(w.bytes(), {"tensor 'b' has unknown ggml type 4"}); }
  { Writer w = good; w.tensors[0].ne = {48}; bad(w.bytes(), {"tensor 'a' of type Q8_0 has rows of 48 elements", "block of 32"}); }
  bad(good.bytes([](std::vector<uint64_t>& o) { o[1] = 40; }), {"tensor 'b' has offset 40, not a multiple of the alignment 32"});
  bad(good.bytes([](std::vector<uint64_t>& o) { o[1] = 0; }), {"tensors 'a' and 'b' overlap"});
  bad(good.bytes([](std::vector<uint64_t>& o) { o[1] = uint64_t(1) << 62; }), {"tensor 'b'", "lies beyond the end of the file"});
  {  // The last tensor cut short.
    std::string b = good.bytes();
    b.resize(b.size() - 32 + 8);
    bad(b, {"tensor 'b' (16 bytes", "lies beyond the end of the file"});
  }
  write_bytes(p, "");
  expect_user_error([&] { GgufFile f(p); }, {p, "truncated"});
  expect_user_error([&] { GgufFile f(scratch("missing.gguf")); }, {"missing.gguf", "cannot open"});
  expect_user_error([&] { GgufFile f(fs::path(p).parent_path().string()); }, {"not a regular file"});
}

TEST(Gguf, EveryTruncationIsAUserError) {
  ScratchCleanup cleanup;
  Writer w;
  w.kv_str("general.architecture", "llama");
  w.kv_strings("tokenizer.ggml.tokens", {"a", "b"});
  w.kv("x", GgufType::Array, le<uint32_t>(uint32_t(GgufType::F32)) + le<uint64_t>(2) + le<float>(1) + le<float>(2));
  w.tensor("a", {32}, 3, std::string(20, '\0'));
  w.tensor("b", {3}, 0, std::string(12, '\0'));
  const std::string full = w.bytes();
  const std::string p = scratch("cut.gguf");
  // The data of the last tensor ends 12 bytes into its aligned slot: cuts inside the padding after
  // it still leave a valid file.
  const size_t valid_from = full.size() - 32 + 12;
  for (size_t n = 0; n < full.size(); ++n) {
    write_bytes(p, full.substr(0, n));
    if (n >= valid_from) {
      EXPECT_NO_THROW(GgufFile f(p)) << n;
      continue;
    }
    try {
      GgufFile f(p);
      ADD_FAILURE() << "a file cut to " << n << " of " << full.size() << " bytes was accepted";
    } catch (const SaeError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::User) << n << ": " << e.what();
    }
  }
}

TEST(GgufLlama, ParamsAndTokenizerFromMetadata) {
  ScratchCleanup cleanup;
  Writer w;
  w.kv_str("general.architecture", "llama");
  w.kv_u32("llama.block_count", 2);
  w.kv_u32("llama.embedding_length", 64);
  w.kv_u32("llama.feed_forward_length", 96);
  w.kv_u32("llama.attention.head_count", 4);
  w.kv_u32("llama.attention.head_count_kv", 2);
  w.kv_u32("llama.context_length", 128);
  w.kv_f32("llama.rope.freq_base", 100000.0f);
  w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.kv_str("tokenizer.ggml.model", "gpt2");
  w.kv_str("tokenizer.ggml.pre", "smollm");
  w.kv_strings("tokenizer.ggml.tokens", {"<|endoftext|>", "a", "b", "ab"});
  w.kv("tokenizer.ggml.token_type", GgufType::Array,
       le<uint32_t>(uint32_t(GgufType::I32)) + le<uint64_t>(4) + le<int32_t>(3) + le<int32_t>(1) + le<int32_t>(1) + le<int32_t>(1));
  w.kv_strings("tokenizer.ggml.merges", {"a b"});
  w.kv_u32("tokenizer.ggml.bos_token_id", 0);
  w.kv_u32("tokenizer.ggml.eos_token_id", 0);
  w.tensor("token_embd.weight", {64, 4}, 0, std::string(64 * 4 * 4, '\0'));
  const std::string p = scratch("llama.gguf");
  write_bytes(p, w.bytes());
  GgufFile f(p);
  const GgufLlamaParams lp = read_llama_params(f);
  EXPECT_EQ(lp.n_layers, 2);
  EXPECT_EQ(lp.d_model, 64);
  EXPECT_EQ(lp.d_mlp, 96);
  EXPECT_EQ(lp.n_heads, 4);
  EXPECT_EQ(lp.n_kv_heads, 2);
  EXPECT_EQ(lp.head_dim, 16);
  EXPECT_EQ(lp.rope_dim, 16);
  EXPECT_EQ(lp.vocab_size, 4);
  EXPECT_EQ(lp.context_length, 128);
  EXPECT_EQ(lp.rope_theta, 100000.0);
  EXPECT_EQ(lp.rms_eps, double(1e-5f));
  EXPECT_TRUE(lp.tied_embeddings);
  const GgufTokenizerData t = read_gguf_tokenizer(f);
  EXPECT_EQ(t.model, "gpt2");
  EXPECT_EQ(t.pre, "smollm");
  EXPECT_EQ(t.tokens.size(), 4u);
  EXPECT_EQ(t.token_types, (std::vector<int32_t>{3, 1, 1, 1}));
  EXPECT_EQ(t.merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(t.bos, 0);
  EXPECT_EQ(t.unk, -1);
  EXPECT_FALSE(t.add_bos);

  // Errors name the key.
  auto variant = [&](const std::function<void(Writer&)>& edit, const std::vector<std::string>& parts, bool tokenizer = false) {
    Writer v = w;
    edit(v);
    const std::string q = scratch("v.gguf");
    write_bytes(q, v.bytes());
    GgufFile g(q);
    std::vector<std::string> all = parts;
    all.insert(all.begin(), q);
    if (tokenizer) expect_user_error([&] { read_gguf_tokenizer(g); }, all);
    else expect_user_error([&] { read_llama_params(g); }, all);
  };
  variant([](Writer& v) { v.kvs[0] = str("general.architecture") + le<uint32_t>(8) + str("gemma2"); }, {"'gemma2'", "supports 'llama'"});
  variant([](Writer& v) { v.kvs.erase(v.kvs.begin() + 1); }, {"'llama.block_count' is missing"});
  variant([](Writer& v) { v.kv_str("llama.rope.scaling.type", "yarn"); }, {"scaling.type 'yarn' is not supported"});
  variant([](Writer& v) { v.kvs[5] = str("llama.attention.head_count_kv") + le<uint32_t>(4) + le<uint32_t>(3); }, {"head_count 4 is not a multiple", "head_count_kv 3"});
  variant([](Writer& v) { v.kv_u32("llama.vocab_size", 5); }, {"llama.vocab_size 5 differs from token_embd's 4 rows"});
  variant([](Writer& v) { v.tensors.clear(); }, {"lacks tensor 'token_embd.weight'"});
  variant([](Writer& v) { v.tensor("rope_freqs.weight", {8}, 0, std::string(32, '\0')); }, {"rope_freqs"});
  variant([](Writer& v) { v.kv_u32("tokenizer.ggml.unknown_token_id", 4); }, {"'tokenizer.ggml.unknown_token_id' is 4, not a token id"}, true);
  variant([](Writer& v) { v.kvs[12] = str("tokenizer.ggml.token_type") + le<uint32_t>(9) + le<uint32_t>(5) + le<uint64_t>(1) + le<int32_t>(1); },
          {"token_type has 1 entries for 4 tokens"}, true);
}

// ---- the GGUF model: DecoderConfig, logical names, Q/K rows ----

namespace {
// llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute): w.reshape(heads, 2, hd/2, cols)
// .swapaxes(1, 2): GGUF row (h, i, s) holds Hugging Face row (h, s, i).
std::vector<float> llama_cpp_permute(const std::vector<float>& w, int64_t heads, int64_t hd, int64_t cols) {
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t s = 0; s < 2; ++s)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t c = 0; c < cols; ++c)
          out[size_t(((h * (hd / 2) + i) * 2 + s) * cols + c)] = w[size_t(((h * 2 + s) * (hd / 2) + i) * cols + c)];
  return out;
}

std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}
}  // namespace

TEST(GgufModel, ConfigNamesAndQkRows) {
  ScratchCleanup cleanup;
  const int64_t D = 32, H = 4, KV = 2, hd = 8, I = 48, V = 6;
  Writer w;
  w.kv_str("general.architecture", "llama");
  w.kv_u32("llama.block_count", 1);
  w.kv_u32("llama.embedding_length", D);
  w.kv_u32("llama.feed_forward_length", I);
  w.kv_u32("llama.attention.head_count", H);
  w.kv_u32("llama.attention.head_count_kv", KV);
  w.kv_u32("llama.context_length", 64);
  w.kv_f32("llama.rope.freq_base", 500.0f);
  w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  w.kv_str("tokenizer.ggml.model", "gpt2");
  w.kv_strings("tokenizer.ggml.tokens", {"<s>", "a", "b", "ab", "Ġ", "Ġa"});
  w.kv_strings("tokenizer.ggml.merges", {"a b", "Ġ a"});
  w.kv_u32("tokenizer.ggml.bos_token_id", 0);
  w.kv_u32("tokenizer.ggml.eos_token_id", 3);
  std::vector<float> q(size_t(H * hd * D)), k(size_t(KV * hd * D)), embd(size_t(V * D));
  for (size_t i = 0; i < q.size(); ++i) q[i] = float(i);
  for (size_t i = 0; i < k.size(); ++i) k[i] = -float(i);
  for (size_t i = 0; i < embd.size(); ++i) embd[i] = 0.5f * float(i);
  w.tensor("token_embd.weight", {uint64_t(D), uint64_t(V)}, 0, f32_bytes(embd));
  w.tensor("blk.0.attn_q.weight", {uint64_t(D), uint64_t(H * hd)}, 0, f32_bytes(llama_cpp_permute(q, H, hd, D)));
  w.tensor("blk.0.attn_k.weight", {uint64_t(D), uint64_t(KV * hd)}, 0, f32_bytes(llama_cpp_permute(k, KV, hd, D)));
  const std::string p = scratch("m.gguf");
  write_bytes(p, w.bytes());
  auto f = std::make_shared<const GgufFile>(p);
  const DecoderConfig c = decoder_config_from_gguf(*f);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.norm, NormType::RmsNorm);
  EXPECT_TRUE(c.gated_mlp);
  EXPECT_EQ(c.activation, Activation::Silu);
  EXPECT_EQ(c.rotary_dim, hd);
  EXPECT_EQ(c.rope_global.theta, 500.0);
  EXPECT_EQ(c.norm_eps, double(1e-6f));
  EXPECT_EQ(c.attn_scale, 1.0 / std::sqrt(8.0));
  EXPECT_EQ(c.bos_token, 0);
  EXPECT_EQ(c.eos_token, 3);
  EXPECT_TRUE(c.tied_embeddings);
  const auto weights = open_gguf_weights(f, c);
  // Q and K come back in Hugging Face's row order, each with its own head count.
  EXPECT_EQ(weights->load("blocks.0.attn.q.weight", {H * hd, D}), q);
  EXPECT_EQ(weights->load("blocks.0.attn.k.weight", {KV * hd, D}), k);
  // Rows of the embedding without loading the table.
  const int32_t rows[3] = {5, 0, 2};
  std::vector<float> got(size_t(3 * D));
  weights->load_rows("embed.weight", {V, D}, rows, 3, got.data());
  for (int r = 0; r < 3; ++r)
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(got[size_t(r * D + d)], embd[size_t(rows[r] * D + d)]);
  expect_user_error([&] { weights->load("blocks.0.mlp.up.weight", {I, D}); }, {p, "lacks tensor 'blk.0.ffn_up.weight'"});
  expect_user_error([&] { weights->load("blocks.0.attn.q_norm.weight", {hd}); }, {p, "no tensor for the decoder's blocks.0.attn.q_norm.weight"});
  expect_user_error([&] { weights->load("blocks.0.attn.k.weight", {KV * hd, D + 1}); }, {p, "'blk.0.attn_k.weight' has shape [16, 32]"});
  // The tokenizer it carries: byte-level BPE from the token list and merges.
  const auto tok = open_gguf_tokenizer(*f);
  EXPECT_EQ(tok->encode("ab a"), (std::vector<int32_t>{3, 5}));
  EXPECT_EQ(tok->decode({3, 5}), "ab a");
  EXPECT_EQ(gguf_tokenizer_unsupported(*f), "");
  // A SentencePiece vocabulary or an unknown pre-tokenizer: named, for harvest (error) and the
  // interpret site (token ids instead).
  for (const auto& [key, value, why] : {std::tuple<std::string, std::string, std::string>{"tokenizer.ggml.model", "llama", "tokenizer.ggml.model 'llama' is not supported"},
                                       {"tokenizer.ggml.pre", "bloom", "tokenizer.ggml.pre 'bloom' is not supported"}}) {
    Writer v = w;
    v.kv_str(key, value);
    if (key == "tokenizer.ggml.model") v.kvs.erase(v.kvs.begin() + 9);  // the first tokenizer.ggml.model
    const std::string q = scratch("t.gguf");
    write_bytes(q, v.bytes());
    GgufFile g(q);
    EXPECT_NE(gguf_tokenizer_unsupported(g).find(why), std::string::npos) << gguf_tokenizer_unsupported(g);
    expect_user_error([&] { open_gguf_tokenizer(g); }, {q, why});
  }
}
