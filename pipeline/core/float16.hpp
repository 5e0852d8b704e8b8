// IEEE half and bfloat16 <-> float32, bit-exact and independent of HDF5: the store's 16-bit
// dtypes, the safetensors reader and the bf16 gradient wire use the same rounding.
#pragma once
#include <bit>
#include <cstdint>

namespace saepipe {

// 16-bit conversions done in our own code: round to nearest even, NaN stays NaN (quiet, sign
// kept), values beyond the range become ±Inf. Widening is exact.
uint16_t float_to_f16(float value);

// Inline and branch-free (a select) like the widening: harvest encodes every value it stores.
inline uint16_t float_to_bf16(float value) {
  const uint32_t u = std::bit_cast<uint32_t>(value);
  const uint16_t nan = uint16_t((u >> 16) | 0x0040u);                    // NaN: keep sign, stay quiet
  const uint16_t rounded = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // nearest even; overflow → Inf
  return (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

// Widening is inline: the store reader calls it per element in a loop that must vectorise.
inline float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

inline float f16_to_float(uint16_t bits) {
  // Branch-free (selects) so the widening loop vectorises; no float subnormal is ever formed, so
  // a flush-to-zero mode set elsewhere in the process cannot change the result.
  const uint32_t sign = uint32_t(bits & 0x8000u) << 16, em = bits & 0x7fffu;
  const uint32_t normal = (em << 13) + 0x38000000u;                          // rebias 15 -> 127
  const uint32_t inf_nan = (em << 13) | 0x7f800000u;                         // payload kept
  const uint32_t subnormal = std::bit_cast<uint32_t>(float(em) * 0x1p-24f);  // exact: em < 2^10
  return std::bit_cast<float>(sign | (em >= 0x7c00u ? inf_nan : em >= 0x0400u ? normal : subnormal));
}

}  // namespace saepipe
