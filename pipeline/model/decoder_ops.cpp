// Shape legend: see decoder_ops.hpp.
#include "pipeline/model/decoder_ops.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/model/fast_math.hpp"

namespace saepipe::decoder_ops {

namespace {

// Rows per BLAS call. Fixed, not derived from the thread count: sgemm's rounding depends on
// the number of rows it is given, and the store must not depend on how many threads made it.
// (128 and 256 ran at the same speed on GPT-2 small; 128 still gives 2 threads work for 2
// sequences of 128.)
constexpr int64_t kRowBlock = 128;

// The elementwise kernels come in an AVX2 and a baseline build, picked at load time (GCC
// target_clones): the library is compiled for any x86-64, and 8-wide vectors matter here.
#define SAE_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))

SAE_VECTOR_CLONES
void gelu_tanh_range(float* x, int64_t lo, int64_t hi) {
  constexpr float k = 0.7978845608028654f;  // sqrt(2/pi)
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + fast_tanh(k * (v + 0.044715f * v * v * v)));
  }
}

SAE_VECTOR_CLONES
void silu_range(float* x, int64_t lo, int64_t hi) {
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) x[i] = x[i] / (1.0f + fast_exp(-x[i]));
}

inline float gelu_tanh1(float v) {
  constexpr float k = 0.7978845608028654f;
  return 0.5f * v * (1.0f + fast_tanh(k * (v + 0.044715f * v * v * v)));
}

SAE_VECTOR_CLONES
void gate_row(const float* g, const float* u, int64_t I, Activation act, float* h) {
  if (act == Activation::Silu) {
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) h[i] = g[i] / (1.0f + fast_exp(-g[i])) * u[i];
  } else if (act == Activation::GeluTanh) {
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) h[i] = gelu_tanh1(g[i]) * u[i];
  } else {
    for (int64_t i = 0; i < I; ++i) h[i] = 0.5f * g[i] * (1.0f + std::erf(g[i] * 0.7071067811865476f)) * u[i];
  }
}

// One query head of causal self-attention for one sequence.
SAE_VECTOR_CLONES
void attend_head(const float* qkv, int64_t T, int64_t stride, int64_t q_off, int64_t k_off, int64_t v_off, int64_t hd,
                 int64_t window, float scale, float cap, float* p, float* out, int64_t out_stride) {
  for (int64_t t = 0; t < T; ++t) {
    const float* q = qkv + t * stride + q_off;
    const int64_t u0 = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
    float mx = -INFINITY;
    for (int64_t u = u0; u <= t; ++u) {
      const float* k = qkv + u * stride + k_off;
      float d = 0;
#pragma omp simd reduction(+ : d)
      for (int64_t i = 0; i < hd; ++i) d += q[i] * k[i];
      float sc = d * scale;
      if (cap > 0) sc = cap * std::tanh(sc / cap);
      p[u] = sc;
      mx = std::max(mx, sc);
    }
    float sum = 0;
    for (int64_t u = u0; u <= t; ++u) {
      p[u] = std::exp(p[u] - mx);
      sum += p[u];
    }
    const float inv = 1.0f / sum;
    float* o = out + t * out_stride;
    for (int64_t i = 0; i < hd; ++i) o[i] = 0;
    for (int64_t u = u0; u <= t; ++u) {
      const float* v = qkv + u * stride + v_off;
      const float w = p[u] * inv;
#pragma omp simd
      for (int64_t i = 0; i < hd; ++i) o[i] += w * v[i];
    }
  }
}

}  // namespace

void norm_rows(const float* x, int64_t N, int64_t C, NormType type, double eps, const float* w, const float* b,
               float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * C;
    float* o = out + n * C;
    float mean = 0;
    if (type == NormType::LayerNorm) {
      double sum = 0;  // double: the statistics of wide rows stay exact to fp32 rounding
      for (int64_t c = 0; c < C; ++c) sum += xr[c];
      mean = float(sum / double(C));
    }
    double sq = 0;
    for (int64_t c = 0; c < C; ++c) sq += double(xr[c] - mean) * double(xr[c] - mean);
    const float rstd = float(1.0 / std::sqrt(sq / double(C) + eps));
    for (int64_t c = 0; c < C; ++c) {
      const float v = (xr[c] - mean) * rstd;
      o[c] = w ? (b ? v * w[c] + b[c] : v * w[c]) : v;
    }
  }
}

void linear(const float* x, int64_t N, int64_t K, const float* W, const float* bias, int64_t O, float* out) {
  const int64_t R = kRowBlock, n_blocks = (N + R - 1) / R;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * R, hi = std::min(N, lo + R);
    if (bias)
      for (int64_t n = lo; n < hi; ++n) std::memcpy(out + n * O, bias, size_t(O) * sizeof(float));
    cpu::matmul(false, false, hi - lo, O, K, 1.0f, x + lo * K, K, W, O, bias ? 1.0f : 0.0f, out + lo * O, O);
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void activate(float* x, int64_t n, Activation act) {
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
    if (act == Activation::GeluTanh) {
      gelu_tanh_range(x, lo, hi);
    } else if (act == Activation::Silu) {
      silu_range(x, lo, hi);
    } else {
      for (int64_t i = lo; i < hi; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
    }
  }
}

void gate(const float* gu, int64_t N, int64_t I, Activation act, float* h) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) gate_row(gu + n * 2 * I, gu + n * 2 * I + I, I, act, h + n * I);
}

void rope_tables(const float* inv_freq, int64_t T, int64_t rd, float* cos, float* sin) {
  const int64_t h = rd / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < h; ++i) {
      const float angle = float(t) * inv_freq[i];  // fp32, as transformers
      cos[t * h + i] = float(std::cos(double(angle)));
      sin[t * h + i] = float(std::sin(double(angle)));
    }
}

void rope(float* x, int64_t N, int64_t T, int64_t stride, int64_t n_heads, int64_t hd, int64_t rd, const float* cos,
          const float* sin) {
  const int64_t h = rd / 2;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* c = cos + (n % T) * h;
    const float* s = sin + (n % T) * h;
    for (int64_t head = 0; head < n_heads; ++head) {
      float* v = x + n * stride + head * hd;
      for (int64_t i = 0; i < h; ++i) {
        const float a = v[i], b = v[i + h];
        v[i] = a * c[i] - b * s[i];
        v[i + h] = b * c[i] + a * s[i];
      }
    }
  }
}

void head_rms_norm(float* x, int64_t N, int64_t stride, int64_t n_heads, int64_t hd, double eps, const float* w) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t head = 0; head < n_heads; ++head) {
      float* v = x + n * stride + head * hd;
      double sq = 0;
      for (int64_t i = 0; i < hd; ++i) sq += double(v[i]) * double(v[i]);
      const float rstd = float(1.0 / std::sqrt(sq / double(hd) + eps));
      for (int64_t i = 0; i < hd; ++i) v[i] = v[i] * rstd * w[i];
    }
}

void attention(const float* qkv, int64_t B, int64_t T, const AttentionShape& s, float* out) {
  const int64_t stride = (s.Hq + 2 * s.Hkv) * s.hd, group = s.Hq / s.Hkv, out_stride = s.Hq * s.hd;
#pragma omp parallel
  {
    std::vector<float> p(static_cast<size_t>(T));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < s.Hq; ++h) {
        const int64_t kv = h / group;
        attend_head(qkv + b * T * stride, T, stride, h * s.hd, (s.Hq + kv) * s.hd, (s.Hq + s.Hkv + kv) * s.hd, s.hd,
                    s.window, s.scale, s.softcap, p.data(), out + b * T * out_stride + h * s.hd, out_stride);
      }
  }
}

void softcap(float* logits, int64_t n, float c) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) logits[i] = c * std::tanh(logits[i] / c);
}

}  // namespace saepipe::decoder_ops
