// Elementwise math for the forward pass that the compiler can vectorise (libm's tanhf is a
// call per element).
#pragma once

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

}  // namespace saepipe
