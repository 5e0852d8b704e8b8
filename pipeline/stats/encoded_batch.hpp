// One batch of held-out tokens after encoding: the sparse codes (idx, val) [n, width] of rows
// [first_row, first_row + n) and their token ids. Batches hold whole sequences, so the context
// of an example (the tokens around it within its sequence) is always inside its batch.
#pragma once
#include <algorithm>
#include <cstdint>

namespace saepipe {

struct EncodedBatch {
  int64_t first_row = 0, n = 0;
  int64_t sequence_length = 1;  // rows [s * L, (s + 1) * L) of the store are sequence s
  const int32_t* tokens = nullptr;  // [n]
  const int32_t* idx = nullptr;     // [n, width], -1 = empty slot
  const float* val = nullptr;       // [n, width]
  int64_t width = 0;

  // Activation of latent f on store row `row` (in this batch); 0 when it is not active.
  float activation(int64_t row, int32_t f) const {
    const int64_t t = row - first_row;
    for (int64_t j = 0; j < width; ++j)
      if (idx[t * width + j] == f) return val[t * width + j];
    return 0.0f;
  }

  // tokens / acts [before + 1 + after]: the window around `row`, cut at its sequence's edges
  // and at the batch's (token -1, activation 0 there).
  void context(int64_t row, int32_t f, int64_t before, int64_t after, int32_t* out_tokens, float* out_acts) const {
    const int64_t seq_start = (row / sequence_length) * sequence_length;
    const int64_t lo = std::max({seq_start, first_row, row - before});
    const int64_t hi = std::min({seq_start + sequence_length, first_row + n, row + after + 1});
    for (int64_t w = row - before, c = 0; w <= row + after; ++w, ++c) {
      const bool inside = w >= lo && w < hi;
      out_tokens[c] = inside ? tokens[w - first_row] : -1;
      out_acts[c] = inside ? activation(w, f) : 0.0f;
    }
  }
};

}  // namespace saepipe
