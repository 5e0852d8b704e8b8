#include "pipeline/model/ggml_types.hpp"

#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/float16.hpp"

namespace saepipe {

namespace {

constexpr int64_t QK_K = 256;  // elements of a k-quant super-block

// ggml's type ids (ggml.h enum ggml_type) with their (block, bytes); ids 4, 5 and 31-33, 36-38
// are retired and stay unknown.
GgmlTypeInfo table(uint32_t type) {
  switch (type) {
    case 0: return {"F32", 1, 4, true};
    case 1: return {"F16", 1, 2, true};
    case 2: return {"Q4_0", 32, 2 + 16, true};
    case 3: return {"Q4_1", 32, 2 + 2 + 16, true};
    case 6: return {"Q5_0", 32, 2 + 4 + 16, false};
    case 7: return {"Q5_1", 32, 2 + 2 + 4 + 16, false};
    case 8: return {"Q8_0", 32, 2 + 32, true};
    case 9: return {"Q8_1", 32, 4 + 4 + 32, false};
    case 10: return {"Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, false};
    case 11: return {"Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, false};
    case 12: return {"Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12, false};
    case 13: return {"Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12, false};
    case 14: return {"Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16, false};
    case 15: return {"Q8_K", QK_K, 4 + QK_K + QK_K / 8, false};
    case 16: return {"IQ2_XXS", QK_K, 2 + QK_K / 4, false};
    case 17: return {"IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, false};
    case 18: return {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, false};
    case 19: return {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, false};
    case 20: return {"IQ4_NL", 32, 2 + 16, false};
    case 21: return {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, false};
    case 22: return {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, false};
    case 23: return {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, false};
    case 24: return {"I8", 1, 1, false};
    case 25: return {"I16", 1, 2, false};
    case 26: return {"I32", 1, 4, false};
    case 27: return {"I64", 1, 8, false};
    case 28: return {"F64", 1, 8, false};
    case 29: return {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, false};
    case 30: return {"BF16", 1, 2, true};
    case 34: return {"TQ1_0", QK_K, 2 + 4 * 13, false};
    case 35: return {"TQ2_0", QK_K, 2 + 64, false};
    case 39: return {"MXFP4", 32, 1 + 16, false};
    default: return {};
  }
}

uint16_t load_u16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }

float load_f16(const unsigned char* p) { return f16_to_float(load_u16(p)); }

}  // namespace

GgmlTypeInfo ggml_type_info(uint32_t type) { return table(type); }

std::string ggml_type_name(uint32_t type) {
  const GgmlTypeInfo t = table(type);
  return t.name ? std::string(t.name) : "type " + std::to_string(type);
}

void dequantize_ggml(uint32_t type, const unsigned char* src, int64_t n, float* out) {
  const GgmlTypeInfo t = table(type);
  if (!t.dequantizable)
    user_error("GGUF tensors of type " + ggml_type_name(type) +
               " cannot be read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
  SAE_ASSERT(n % t.block == 0, "dequantize_ggml: a partial block");
  if (n == 0) return;  // a tensor with a zero dimension: out may be null, memcpy(null, ...) is UB
  const int64_t blocks = n / t.block;
  switch (type) {
    case 0:  // F32: little-endian, like the host
      std::memcpy(out, src, size_t(n) * 4);
      break;
    case 1:
      for (int64_t i = 0; i < n; ++i) out[i] = load_f16(src + 2 * i);
      break;
    case 30:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_u16(src + 2 * i));
      break;
    case 8:  // Q8_0
#pragma omp parallel for schedule(static) if (blocks > 4096)
      for (int64_t b = 0; b < blocks; ++b) {
        const unsigned char* blk = src + b * t.bytes;
        const float d = load_f16(blk);
        float* y = out + b * 32;
        for (int j = 0; j < 32; ++j) y[j] = float(int8_t(blk[2 + j])) * d;
      }
      break;
    case 2:  // Q4_0
#pragma omp parallel for schedule(static) if (blocks > 4096)
      for (int64_t b = 0; b < blocks; ++b) {
        const unsigned char* blk = src + b * t.bytes;
        const float d = load_f16(blk);
        const unsigned char* q = blk + 2;
        float* y = out + b * 32;
        for (int j = 0; j < 16; ++j) {
          y[j] = float(int(q[j] & 0x0F) - 8) * d;
          y[j + 16] = float(int(q[j] >> 4) - 8) * d;
        }
      }
      break;
    case 3:  // Q4_1
#pragma omp parallel for schedule(static) if (blocks > 4096)
      for (int64_t b = 0; b < blocks; ++b) {
        const unsigned char* blk = src + b * t.bytes;
        const float d = load_f16(blk), m = load_f16(blk + 2);
        const unsigned char* q = blk + 4;
        float* y = out + b * 32;
        for (int j = 0; j < 16; ++j) {
          y[j] = float(q[j] & 0x0F) * d + m;
          y[j + 16] = float(q[j] >> 4) * d + m;
        }
      }
      break;
    default:
      internal_error("dequantize_ggml: type " + ggml_type_name(type) + " marked dequantizable without a decoder");
  }
}

}  // namespace saepipe
