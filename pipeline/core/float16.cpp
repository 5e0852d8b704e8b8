// The 16-bit float formats of the store (IEEE half, bfloat16): conversions done in our own
// code so rounding is the same everywhere and widening runs at memory speed.
#include "pipeline/core/float16.hpp"

#include <bit>

namespace saepipe {

uint16_t float_to_f16(float value) {
  const uint32_t u = std::bit_cast<uint32_t>(value);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN stays NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 (half way past 65504) → Inf
  if (a >= 0x38800000u) {                                 // normal half (>= 2^-14): rebias, round
    const uint32_t r = a - 0x38000000u;
    return uint16_t(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
  }
  if (a < 0x33000000u) return sign;  // below 2^-25: rounds to zero
  // Subnormal half: value / 2^-24 = mantissa * 2^(e - 126), rounded to nearest even.
  const uint32_t e = a >> 23, mant = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return uint16_t(sign | q);
}

}  // namespace saepipe
