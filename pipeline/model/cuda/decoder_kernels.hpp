// The generic decoder's own CUDA kernels (decoder.cu runs the matmuls on cuBLASLt): the device
// counterparts of pipeline/model/decoder_ops.hpp, with the same arithmetic in fp32 (norm
// statistics in fp64). The residual stream, matmul outputs, q/k/v and every hooked activation
// are fp32; matmul inputs (norm outputs, the attention output, the MLP hidden layer) are stored
// in the activation type (fp32, bf16 or fp16).
//
// Shape legend: B sequences, T positions, N = B*T rows, C width of a row, Hq / Hkv query /
// key-value heads, hd head_dim (<= kMaxDecoderHeadDim), rd rotary dims, I MLP width.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/gpt2_kernels.hpp"  // ActType
#include "pipeline/model/decoder_config.hpp"

namespace saepipe::cuda {

constexpr int64_t kMaxDecoderHeadDim = 256;

// x[n,:] = table[tokens[n],:] * scale (fp32); tokens in [0, V) (checked by the caller).
void decoder_embed(const int32_t* tokens, int64_t N, int64_t C, const float* table, float scale, float* x,
                   cudaStream_t stream);

// x [N,C] += delta (when not null, written back), then out = norm(x) * w (+ b) (w nullable: the
// bare normalisation), stored as out_type (F32: a float array). LayerNorm or RMSNorm as
// decoder_ops::norm_rows. out may be x when out_type is F32 and delta is null.
void decoder_norm(float* x, const float* delta, int64_t N, int64_t C, NormType type, double eps, const float* w,
                  const float* b, void* out, ActType out_type, cudaStream_t stream);

// y [N,O] += bias [O] (fp32).
void decoder_add_bias(float* y, const float* bias, int64_t N, int64_t O, cudaStream_t stream);

// RMSNorm over heads [0, n_heads) of each row of x [N, stride] (head h at columns h*hd), weight w [hd].
void decoder_head_rms_norm(float* x, int64_t N, int64_t stride, int64_t n_heads, int64_t hd, double eps,
                           const float* w, cudaStream_t stream);

// RoPE (rotate-half) on heads [0, n_heads) of each row of x [N, stride], row n at position
// n % T; cos, sin [T, rd/2] (device).
void decoder_rope(float* x, int64_t N, int64_t T, int64_t stride, int64_t n_heads, int64_t hd, int64_t rd,
                  const float* cos, const float* sin, cudaStream_t stream);

// Causal self-attention: qkv [B,T,(Hq + 2 Hkv) hd] fp32 -> out [B,T,Hq hd] of out_type; query
// head h reads key-value head h / (Hq / Hkv); keys t - window < u <= t (window 0: all u <= t);
// scores (q . k) * scale, soft-capped c tanh(s / c) when softcap > 0; online softmax in fp32.
void decoder_attention(const float* qkv, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t hd, int64_t window,
                       float scale, float softcap, void* out, ActType out_type, cudaStream_t stream);

// MLP activation: gated, h[n,i] = act(in[n,i]) * in[n, I + i] (in [N, 2I]); else h = act(in)
// (in [N, I]); h [N, I] stored as out_type.
void decoder_activation(const float* in, int64_t N, int64_t I, bool gated, Activation act, void* h, ActType out_type,
                        cudaStream_t stream);

}  // namespace saepipe::cuda
