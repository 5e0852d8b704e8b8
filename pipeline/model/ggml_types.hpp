// ggml's tensor types as GGUF files store them: each type packs `block` elements into `bytes`
// bytes, and a row (the fastest dimension, ne[0]) is a whole number of blocks. Dequantization to
// float32 follows the block layouts llama.cpp defines (ggml-common.h / ggml-quants.c):
//   F32, F16 (IEEE half), BF16        one element per block
//   Q8_0  {f16 d; int8 q[32]}         x = q·d
//   Q4_0  {f16 d; u8 q[16]}           x[j] = (lo4(q[j]) − 8)·d, x[j+16] = (hi4(q[j]) − 8)·d
//   Q4_1  {f16 d; f16 m; u8 q[16]}    x[j] = lo4(q[j])·d + m,   x[j+16] = hi4(q[j])·d + m
// The other types are known by size only (so any GGUF file can be opened and checked), and
// reading one is a user error naming it.
#pragma once
#include <cstdint>
#include <string>

namespace saepipe {

struct GgmlTypeInfo {
  const char* name = nullptr;  // nullptr: an id ggml does not define (or has retired)
  int64_t block = 0;           // elements per block
  int64_t bytes = 0;           // bytes per block
  bool dequantizable = false;  // dequantize_ggml supports it
};

// What ggml id `type` is; name == nullptr for an unknown id.
GgmlTypeInfo ggml_type_info(uint32_t type);

// "Q4_1", or "type 42" for an unknown id.
std::string ggml_type_name(uint32_t type);

// Converts n elements (a multiple of the type's block) of a dequantizable type from `src`
// (n / block · bytes bytes, any alignment) to float32. The arithmetic is float32 as in ggml and
// gguf-py (x = q·d + m with d, m widened from f16), so results are bit-identical to theirs.
void dequantize_ggml(uint32_t type, const unsigned char* src, int64_t n, float* out);

}  // namespace saepipe
