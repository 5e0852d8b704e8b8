// Fixtures shared by the HDF5/store tests and the checkpoint/layout tests: temporary
// directories, error expectations, independent 16-bit references, small stores.
// Every test works in its own directory under /tmp. Shapes: N tokens, D d_model, F d_sae.
#pragma once
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/layout_check.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using saepipe::ErrorKind;
using saepipe::SaeError;
namespace h5 = saepipe::h5;

// Internal linkage: each test file gets its own copy of these small helpers.
namespace {

// ---- helpers ----

// A fresh directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = "/tmp/saepipe-" + std::string(info->test_suite_name()) + "-" + info->name() + "-" +
            std::to_string(::getpid());
    std::replace(path_.begin() + 5, path_.end(), '/', '_');  // parameterised names hold '/' 
    fs::remove_all(path_);
    fs::create_directories(path_);
    h5::silence_errors();
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs fn, expecting a SaeError of `kind` whose one-line message holds every part.
template <class Fn>
std::string expect_error(Fn&& fn, ErrorKind kind, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const SaeError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(int(e.kind()), int(kind)) << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no SaeError thrown";
  return "";
}
#define EXPECT_SAE_ERROR(stmt, kind, ...)                         \
  do {                                                            \
    SCOPED_TRACE(#stmt);                                          \
    expect_error([&] { stmt; }, kind, __VA_ARGS__);             \
  } while (0)

// Independent 16-bit reference: decode with ldexp, round by searching the table of all finite
// values for the nearest (ties to the even encoding). Nothing shared with the code under test.
struct Format16 {
  int mant_bits, exp_bits, bias;
  double decode(uint16_t bits) const {
    const int m = bits & ((1 << mant_bits) - 1), e = (bits >> mant_bits) & ((1 << exp_bits) - 1);
    const double sign = (bits & 0x8000) ? -1.0 : 1.0;
    if (e == (1 << exp_bits) - 1) return m ? std::nan("") : sign * INFINITY;
    if (e == 0) return sign * std::ldexp(double(m), 1 - bias - mant_bits);
    return sign * std::ldexp(double(m + (1 << mant_bits)), e - bias - mant_bits);
  }
  uint16_t inf_bits() const { return uint16_t(((1 << exp_bits) - 1) << mant_bits); }
  uint16_t round(float x) const {
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(double(x));
    const int n = inf_bits();  // encodings 0 .. n-1 are the finite non-negative values, increasing
    int lo = 0, hi = n - 1;
    if (a >= decode(uint16_t(n - 1))) {
      lo = n - 1;
      hi = n;  // "next" after max is Inf, of value 2^(emax+1)
    } else {
      while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        (decode(uint16_t(mid)) <= a ? lo : hi) = mid;
      }
    }
    const double vlo = decode(uint16_t(lo)),
                 vhi = hi == n ? std::ldexp(1.0, (1 << exp_bits) - 1 - bias) : decode(uint16_t(hi));
    if (a == vlo) return uint16_t(sign | lo);
    const double dlo = a - vlo, dhi = vhi - a;
    const int pick = dlo < dhi ? lo : dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi);
    return uint16_t(sign | pick);
  }
  float rounded(float x) const { return float(decode(round(x))); }
};
const Format16 kF16ref{10, 5, 15};
const Format16 kBF16ref{7, 8, 127};

float expected_stored(float x, saepipe::StoreDtype dtype) {
  switch (dtype) {
    case saepipe::StoreDtype::Float16: return kF16ref.rounded(x);
    case saepipe::StoreDtype::BFloat16: return kBF16ref.rounded(x);
    default: return x;
  }
}

// Values over many magnitudes (f16 subnormals to ~4e3), both signs.
std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> mag(-7.0, 3.5), unit(0.5, 1.0);
  std::vector<float> v(n);
  for (float& x : v) x = float((rng() & 1 ? -1 : 1) * unit(rng) * std::pow(10.0, mag(rng)));
  return v;
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A synthetic store: shards of the given sizes, values f(token, dim) random per seed.
struct TestStore {
  std::vector<std::string> hooks{"blocks.0.hook_resid_post", "blocks.1.hook_resid_post"};
  int64_t d_model = 24, context = 10;
  saepipe::StoreDtype dtype = saepipe::StoreDtype::Float32;
  std::vector<int64_t> shard_sizes{70, 50, 80};
  std::vector<std::vector<float>> original;  // per hook [N * D], before rounding
  std::vector<int32_t> tokens, position;
  std::vector<int64_t> sequence;
  std::string fingerprint = "fp-1";

  int64_t n_tokens() const {
    int64_t n = 0;
    for (int64_t s : shard_sizes) n += s;
    return n;
  }
  saepipe::StoreManifest manifest() const {
    saepipe::StoreManifest m;
    m.d_model = d_model;
    m.dtype = saepipe::to_string(dtype);
    m.hooks = hooks;
    m.n_tokens = n_tokens();
    m.context = context;
    m.source = {{"kind", "test"}, {"fingerprint", fingerprint}};
    int64_t first = 0;
    for (size_t s = 0; s < shard_sizes.size(); ++s) {
      m.shards.push_back({"shard-" + std::to_string(s) + ".h5", first, shard_sizes[s], int(s % 2)});
      first += shard_sizes[s];
    }
    return m;
  }
  saepipe::ShardData shard_data(size_t s) const {
    const saepipe::StoreManifest m = manifest();
    const int64_t first = m.shards[s].first_token, n = m.shards[s].n_tokens;
    saepipe::ShardData d;
    d.first_token = first;
    d.n_tokens = n;
    for (const auto& h : original) d.activations.emplace_back(h.begin() + first * d_model, h.begin() + (first + n) * d_model);
    d.tokens.assign(tokens.begin() + first, tokens.begin() + first + n);
    d.sequence.assign(sequence.begin() + first, sequence.begin() + first + n);
    d.position.assign(position.begin() + first, position.begin() + first + n);
    return d;
  }
  // Fills the values (unless already set) and writes shards, manifest and the virtual store.
  void write(const std::string& dir, uint32_t seed = 7) {
    const int64_t N = n_tokens();
    if (original.empty())
      for (size_t h = 0; h < hooks.size(); ++h) original.push_back(random_values(size_t(N * d_model), seed + uint32_t(h)));
    tokens.resize(static_cast<size_t>(N));
    sequence.resize(static_cast<size_t>(N));
    position.resize(static_cast<size_t>(N));
    for (int64_t t = 0; t < N; ++t) {
      tokens[t] = int32_t((t * 7919) % 50257);
      sequence[t] = t / context;
      position[t] = int32_t(t % context);
    }
    fs::create_directories(dir);
    const saepipe::StoreManifest m = manifest();
    for (size_t s = 0; s < m.shards.size(); ++s)
      saepipe::write_shard(dir + "/" + m.shards[s].path, shard_data(s), hooks, d_model, dtype, fingerprint);
    m.write(dir);
    saepipe::write_virtual_store(dir, m);
  }
  float expected(size_t hook, int64_t row, int64_t col) const {
    return expected_stored(original[hook][size_t(row * d_model + col)], dtype);
  }
};

// Writes a .npy file (version 1.0) for the h5py check.
template <class T>
void write_npy(const std::string& path, const std::vector<T>& data, const std::vector<int64_t>& shape) {
  const char* descr = std::is_same_v<T, float> ? "<f4" : std::is_same_v<T, int32_t> ? "<i4" : "<i8";
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ",";
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * sizeof(T)));
}

saepipe::SaeCheckpoint make_checkpoint(int64_t D, int64_t F, uint32_t seed) {
  saepipe::SaeCheckpoint c;
  c.d_in = D;
  c.d_sae = F;
  c.W_enc = random_values(size_t(D * F), seed);
  c.b_enc = random_values(size_t(F), seed + 1);
  c.W_dec = random_values(size_t(F * D), seed + 2);
  c.b_dec = random_values(size_t(D), seed + 3);
  c.threshold = random_values(size_t(F), seed + 4);
  c.architecture = "topk";
  c.hook = "blocks.0.hook_resid_post";
  c.resolved_job = "[run]\nname = \"t\"\n";
  c.store = "runs/t/activations";
  c.k = 4;
  c.tokens_seen = 123456789012;
  c.step = 42;
  c.heldout_first_token = 180;
  c.heldout_n_tokens = 20;
  return c;
}

// Writes raw 16-bit patterns with the C API (no conversion of ours involved).
void write_raw16(const std::string& path, h5::Type type, const std::vector<uint16_t>& bits) {
  h5::File f = h5::create_file(path);
  h5::Dataset ds = f.create_dataset("x", type, {int64_t(bits.size())});
  h5::Datatype t = h5::file_type(type);
  ASSERT_GE(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data()), 0);
}

}  // namespace
