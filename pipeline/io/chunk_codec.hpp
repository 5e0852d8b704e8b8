// What the activation store does to a chunk's bytes outside HDF5, so that chunks can be read
// and written whole (H5Dread_chunk / H5Dwrite_chunk) and the work spread over threads:
// HDF5's Fletcher32 checksum, float32 -> store dtype encoding, store dtype -> float32 widening
// and the finiteness scan. A chunk on disk is its elements (little-endian, row-major) followed
// by the 4-byte checksum, exactly as HDF5's Fletcher32 filter writes it.
//
// Shapes: n elements; "bytes" are byte counts.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pipeline/io/activation_store.hpp"

namespace saepipe {

// HDF5's Fletcher32 (H5Zfletcher32: 16-bit words taken big-endian, sums reduced mod 65535, an
// all-zero input gives 0). The library's own routine runs at ~1.3 GB/s on the bench machine;
// this one is the same function computed in lane sums (no multiplies), several times faster.
uint32_t fletcher32(const void* data, size_t bytes);

// The checksum HDF5 stores after `data_bytes` of chunk data (little-endian uint32).
void append_fletcher32(uint8_t* chunk, size_t data_bytes);
// Whether the stored checksum matches, accepting also the byte-swapped form HDF5 accepts from
// files written before its 1.6.3.
bool fletcher32_matches(const uint8_t* chunk, size_t data_bytes);

// float32 -> store dtype (16-bit: round to nearest even, as pipeline/core/float16.hpp).
// Returns the index of the first finite value that overflows the dtype (becomes Inf), or -1.
int64_t encode_values(const float* in, int64_t n, StoreDtype dtype, void* out);
// store dtype -> float32, exact, times `scale` (1: a plain copy of the values).
void widen_values(const void* in, int64_t n, StoreDtype dtype, float scale, float* out);
// Index of the first NaN or Inf, or -1.
int64_t first_non_finite(const void* in, int64_t n, StoreDtype dtype);

}  // namespace saepipe
