// Chunk bytes outside HDF5: Fletcher32, encoding, widening, the finiteness scan.
#include "pipeline/io/chunk_codec.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/float16.hpp"

namespace saepipe {

namespace {

// GCC/Clang vector types: the compiler lowers them to the widest unit of each clone below.
using Words = uint16_t __attribute__((vector_size(32), aligned(1)));  // 16 words, unaligned loads
using Lanes = uint32_t __attribute__((vector_size(64)));               // 16 lane sums

constexpr uint64_t kMod = 65535;

// One (big-endian) 16-bit word at p.
uint32_t word_at(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }

}  // namespace

// With n words w_i, HDF5 computes s1 = sum w_i and s2 = sum (n - i) w_i, folded mod 65535 in a
// way that keeps a nonzero sum nonzero (a multiple of 65535 reads 0xffff) and an all-zero
// input 0. Here 16 lanes take every 16th word; per lane, acc += w and b += acc over up to 256
// rows give sum w and sum (rows - r) w without overflowing 32 bits, and the lanes combine as
// sum_i (len - i) w_i = 16 * sum b - sum_l l * acc_l.
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
uint32_t fletcher32(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  constexpr size_t kLanes = 16, kRows = 256;
  size_t n = bytes / 2;
  uint64_t s1 = 0, s2 = 0;
  bool nonzero = false;
  while (n >= kLanes) {
    const size_t rows = std::min(kRows, n / kLanes), len = rows * kLanes;
    Lanes acc = {}, b = {};
    for (size_t r = 0; r < rows; ++r) {
      Words w;
      std::memcpy(&w, p + r * 2 * kLanes, sizeof w);
      w = (w >> 8) | (w << 8);  // big-endian words
      acc += __builtin_convertvector(w, Lanes);
      b += acc;
    }
    uint64_t a = 0, bs = 0, la = 0;
    for (size_t l = 0; l < kLanes; ++l) {
      a += acc[l];
      bs += b[l];
      la += l * uint64_t(acc[l]);
    }
    s2 = (s2 + (len % kMod) * s1 + kLanes * bs - la) % kMod;
    s1 = (s1 + a) % kMod;
    nonzero |= a != 0;
    p += 2 * len;
    n -= len;
  }
  for (; n > 0; --n, p += 2) {
    const uint32_t w = word_at(p);
    s1 = (s1 + w) % kMod;
    s2 = (s2 + s1) % kMod;
    nonzero |= w != 0;
  }
  if (bytes % 2) {  // HDF5 pads an odd last byte with a zero low byte
    const uint32_t w = uint32_t(*p) << 8;
    s1 = (s1 + w) % kMod;
    s2 = (s2 + s1) % kMod;
    nonzero |= w != 0;
  }
  if (!nonzero) return 0;
  const uint32_t r1 = s1 == 0 ? uint32_t(kMod) : uint32_t(s1), r2 = s2 == 0 ? uint32_t(kMod) : uint32_t(s2);
  return (r2 << 16) | r1;
}

void append_fletcher32(uint8_t* chunk, size_t data_bytes) {
  const uint32_t sum = fletcher32(chunk, data_bytes);
  for (int i = 0; i < 4; ++i) chunk[data_bytes + size_t(i)] = uint8_t(sum >> (8 * i));
}

bool fletcher32_matches(const uint8_t* chunk, size_t data_bytes) {
  const uint8_t* s = chunk + data_bytes;
  const uint32_t stored = uint32_t(s[0]) | uint32_t(s[1]) << 8 | uint32_t(s[2]) << 16 | uint32_t(s[3]) << 24;
  const uint32_t sum = fletcher32(chunk, data_bytes);
  // HDF5 before 1.6.3 swapped the bytes of each 16-bit half on little-endian hosts.
  const uint32_t swapped = ((sum & 0x00ff00ffu) << 8) | ((sum >> 8) & 0x00ff00ffu);
  return stored == sum || stored == swapped;
}

__attribute__((target_clones("avx2", "default")))
int64_t encode_values(const float* in, int64_t n, StoreDtype dtype, void* out) {
  if (dtype == StoreDtype::Float32) {
    std::memcpy(out, in, size_t(n) * sizeof(float));
    return -1;
  }
  auto* bits = static_cast<uint16_t*>(out);
  const bool half = dtype == StoreDtype::Float16;
  int64_t overflow = -1;
  if (half) {
    for (int64_t i = 0; i < n; ++i) bits[i] = float_to_f16(in[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) bits[i] = float_to_bf16(in[i]);
  }
  // Overflow shows as an Inf from a finite input; checked in a second pass that vectorises.
  const uint16_t exp_mask = half ? 0x7c00u : 0x7f80u;
  for (int64_t i = 0; i < n && overflow < 0; ++i)
    if ((bits[i] & exp_mask) == exp_mask && std::isfinite(in[i])) overflow = i;
  return overflow;
}

// AVX2 / AVX-512 clones (the library targets any x86-64): the train stage widens every batch.
__attribute__((target_clones("avx512f", "avx2", "default"))) void widen_values(const void* in, int64_t n,
                                                                              StoreDtype dtype, float scale,
                                                                              float* out) {
  switch (dtype) {
    case StoreDtype::Float32: {
      const auto* f = static_cast<const float*>(in);
      if (scale == 1.0f) {
        std::memcpy(out, f, size_t(n) * sizeof(float));
      } else {
        for (int64_t i = 0; i < n; ++i) out[i] = f[i] * scale;
      }
      return;
    }
    case StoreDtype::BFloat16: {
      const auto* b = static_cast<const uint16_t*>(in);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(b[i]) * scale;
      return;
    }
    case StoreDtype::Float16: {
      const auto* b = static_cast<const uint16_t*>(in);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_float(b[i]) * scale;
      return;
    }
  }
  internal_error("widen_values: unknown dtype");
}

namespace {
// Index of the first element whose exponent bits are all set (NaN or Inf), or -1. A block is
// first tested branch-free: (v & mask) + low carries into the top bit exactly when the exponent
// is all ones (mask + low == top), and an OR of those vectorises.
template <class T>
int64_t first_all_ones(const T* v, int64_t n, T mask, T low, T top) {
  constexpr int64_t kBlock = 1024;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    T any = 0;
    for (int64_t i = b; i < e; ++i) any |= T((v[i] & mask) + low);
    if (any & top)
      for (int64_t i = b; i < e; ++i)
        if ((v[i] & mask) == mask) return i;
  }
  return -1;
}
}  // namespace

__attribute__((target_clones("avx2", "default")))
int64_t first_non_finite(const void* in, int64_t n, StoreDtype dtype) {
  switch (dtype) {
    case StoreDtype::Float32:
      return first_all_ones<uint32_t>(static_cast<const uint32_t*>(in), n, 0x7f800000u, 0x00800000u, 0x80000000u);
    case StoreDtype::BFloat16:
      return first_all_ones<uint16_t>(static_cast<const uint16_t*>(in), n, 0x7f80u, 0x0080u, 0x8000u);
    case StoreDtype::Float16:
      return first_all_ones<uint16_t>(static_cast<const uint16_t*>(in), n, 0x7c00u, 0x0400u, 0x8000u);
  }
  internal_error("first_non_finite: unknown dtype");
}

}  // namespace saepipe
