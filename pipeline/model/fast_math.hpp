// Elementwise math for the forward pass that the compiler can vectorise (libm's tanhf is a
// call per element).
#pragma once
#include <bit>
#include <cstdint>

namespace saepipe {

// tanh as a rational function (the minimax fit Eigen uses for float): within 4e-7 of tanh on
// the whole line (tests/unit/test_model.cpp checks it).
// Branch-free (value selects only) so that loops over it vectorise.
inline float fast_tanh(float a) {
  constexpr float lim = 7.90531110763549805f;  // beyond it the fit is 1 to float precision
  float x = a > lim ? lim : a;
  x = x < -lim ? -lim : x;
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float r = p * x / q;
  return (a < 0.0004f && a > -0.0004f) ? a : r;
}

// exp for x <= 88 (the softmaxes of spliced_loss.cpp): 2^n * exp(r) with n = round(x / ln 2),
// r reduced in two parts (Cody-Waite) and exp(r) by Cephes' degree-6 polynomial for expf:
// within 2e-7 relative of exp (tests/unit/test_model_metrics.cpp checks it). Below -87.3 it
// returns exp(-87.3) ~ 1.2e-38 instead of a denormal or 0. Branch-free, so loops vectorise.
inline float fast_exp(float a) {
  float x = a > 88.0f ? 88.0f : a;
  x = x < -87.3f ? -87.3f : x;
  constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + round_magic) - round_magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>(uint32_t(int32_t(n) + 127) << 23);
  return y * scale;
}

}  // namespace saepipe
