// The GPT-2 forward pass's own CUDA kernels (the matmuls are cuBLASLt's, in
// pipeline/model/cuda/gpt2.cu): embeddings, residual add fused with LayerNorm, causal
// self-attention, and the bias / GELU epilogue for when cuBLASLt cannot fuse it. The CPU
// reference is pipeline/model/gpt2.cpp; tests/gpu/test_cuda_gpt2.cpp checks the whole pass
// against it at every hook.
//
// Storage types: the residual stream, LayerNorm parameters, embeddings and every hooked
// activation are fp32. The inputs of the matmuls and of the attention (LayerNorm outputs, q/k/v,
// the attention output, the MLP hidden layer) are stored in the "activation type" (fp32, bf16 or
// fp16); arithmetic inside every kernel is fp32 (LayerNorm statistics in fp64, as on the CPU).
//
// Shape legend: B sequences, T positions, N = B*T rows, C d_model, H heads, hs = C/H head
// size, O output features of a linear map.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace saepipe::cuda {

enum class ActType { F32, BF16, F16 };
size_t act_bytes(ActType t);
const char* to_string(ActType t);

// Largest head size causal_attention supports.
constexpr int64_t kMaxHeadSize = 128;

// x[n,:] = wte[tokens[n],:] + wpe[n % T,:] (fp32). tok_out / pos_out (nullable) receive the two
// terms (hook_embed, hook_pos_embed). tokens [N] must lie in [0, V) (checked by the caller).
void gpt2_embed(const int32_t* tokens, int64_t B, int64_t T, int64_t C, const float* wte, const float* wpe,
                float* x, float* tok_out, float* pos_out, cudaStream_t stream);

// x [N,C] += delta [N,C] when delta is not null (written back to x), then
// out [N,C] = (x - mean) / sqrt(var + eps) (* w + b when w is not null), stored as out_type.
// The statistics follow gpt2.cpp's layer_norm: mean and variance summed in fp64, the mean
// rounded to fp32 first; the normalisation and affine map in fp32 without contraction.
void residual_layernorm(float* x, const float* delta, int64_t N, int64_t C, const float* w, const float* b,
                        double eps, void* out, ActType out_type, cudaStream_t stream);

// Causal self-attention: qkv [B,T,3C] (q | k | v, heads contiguous within each, as c_attn
// writes them) to out [B,T,C], both of type `type`; softmax(q k^T * scale) v per head with an
// online (one-pass) softmax in fp32. hs = C / H <= kMaxHeadSize.
void causal_attention(const void* qkv, void* out, ActType type, int64_t B, int64_t T, int64_t C, int64_t H,
                      float scale, cudaStream_t stream);

// In place on y [N,O] of type `type`: y += bias (bias [O] of the same type, nullable), then
// GELU when `gelu` (tanh form when gelu_tanh, else the exact erf form). The epilogue for
// matmuls cuBLASLt could not fuse, and for exact GELU, which cuBLASLt does not offer.
void bias_gelu(void* y, const void* bias, ActType type, int64_t N, int64_t O, bool gelu, bool gelu_tanh,
               cudaStream_t stream);

// y [N,C] (fp32) += d [N,C] (fp32).
void add_f32(float* y, const float* d, int64_t n, cudaStream_t stream);

// Host conversions (round to nearest even), for uploading weights. out [n] of `type`.
void convert_from_f32(const float* in, int64_t n, ActType type, void* out_host);

}  // namespace saepipe::cuda
