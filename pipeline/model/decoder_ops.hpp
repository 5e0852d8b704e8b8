// The CPU pieces of the generic decoder's forward pass (decoder.cpp), fp32.
//
// Threads: all parallelism is OpenMP's. Each matmul is cut into fixed blocks of rows spread over
// the OpenMP threads (so the result does not depend on the thread count), each block a call to
// BLAS, which should then be single-threaded: callers hold a SingleThreadedBlas
// (blas_threads.hpp) around their forward passes. (With both pools active, OpenMP threads
// spinning between regions and BLAS threads yielding fought over the cores: GPT-2 small on 2
// cores ran at 540 tokens/s, 990 with OMP_WAIT_POLICY=passive, ~1400 with this scheme.)
//
// Shape legend: B sequences, T positions, N = B*T rows, C width of a row, K / O in / out
// features, Hq / Hkv query / key-value heads, hd head_dim, rd rotary dims, I MLP width.
#pragma once
#include <cstdint>

#include "pipeline/model/decoder_config.hpp"

namespace saepipe::decoder_ops {

// out[N,C] = norm(x) * w (+ b): LayerNorm ((x - mean) / sqrt(var + eps)) or RMSNorm
// (x / sqrt(mean(x^2) + eps)); without w, the bare normalisation. out may be x.
void norm_rows(const float* x, int64_t N, int64_t C, NormType type, double eps, const float* w, const float* b,
               float* out);

// out[N,O] = x[N,K] W[K,O] (+ bias[O]); row blocks spread over the OpenMP threads.
void linear(const float* x, int64_t N, int64_t K, const float* W, const float* bias, int64_t O, float* out);

// x[i] += y[i].
void add_inplace(float* x, const float* y, int64_t n);

// Activation in place on x[n].
void activate(float* x, int64_t n, Activation act);
// Gated MLP: h[N,I] = act(gu[:, :I]) * gu[:, I:], gu [N, 2I].
void gate(const float* gu, int64_t N, int64_t I, Activation act, float* h);

// Rotary tables for positions 0..T-1: cos, sin [T, rd/2] from the inverse frequencies.
void rope_tables(const float* inv_freq, int64_t T, int64_t rd, float* cos, float* sin);
// RoPE (rotate-half layout) on heads [0, n_heads) of each row of x [N, stride] (head h at
// columns h*hd .. h*hd + hd, its first rd dims rotating), row n at position n % T.
void rope(float* x, int64_t N, int64_t T, int64_t stride, int64_t n_heads, int64_t hd, int64_t rd, const float* cos,
          const float* sin);
// RMSNorm over each head: heads [0, n_heads) of each row of x [N, stride], weight w [hd].
void head_rms_norm(float* x, int64_t N, int64_t stride, int64_t n_heads, int64_t hd, double eps, const float* w);

struct AttentionShape {
  int64_t Hq, Hkv, hd;
  int64_t window = 0;      // keys within t - window < u <= t; 0: all u <= t
  float scale = 1;         // scores = (q . k) * scale
  float softcap = 0;       // scores = c tanh(scores / c) when > 0
};
// Causal self-attention. qkv [B, T, (Hq + 2 Hkv) hd] (q heads | k heads | v heads), out [B, T, Hq hd].
// Query head h reads key-value head h / (Hq / Hkv).
void attention(const float* qkv, int64_t B, int64_t T, const AttentionShape& s, float* out);

// logits[n] = c tanh(logits[n] / c).
void softcap(float* logits, int64_t n, float c);

}  // namespace saepipe::decoder_ops
