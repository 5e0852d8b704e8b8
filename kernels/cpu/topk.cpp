// Per-row top-k selection.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   x [N,F] -> idx [N,K] (int32), val [N,K], each row sorted by descending value.
//
// K is small next to F (32..256 of up to 131072), so each row keeps a sorted buffer of the
// best K seen so far and only inserts values strictly above the current K-th value. Blocks of
// 16 columns are first tested as a whole (a vectorisable "any above threshold") so the
// common case — nothing in the block beats the threshold — costs one compare per element.
#include <cmath>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cpu {
namespace {

constexpr int64_t kBlock = 16;

// Sorted (descending value, ascending index among equals) buffer of at most K entries.
struct TopBuffer {
  std::vector<float> v;
  std::vector<int32_t> i;
  int64_t size = 0, cap = 0;

  void reset(int64_t k) {
    cap = k;
    size = 0;
    v.assign(size_t(k), 0.0f);
    i.assign(size_t(k), -1);
  }
  // Lowest value that a candidate must strictly beat once the buffer is full.
  float threshold() const { return size < cap ? -INFINITY : v[cap - 1]; }

  // Columns are visited in increasing order, so an equal value already in the buffer has a
  // lower index and stays ahead: insert after all entries >= value.
  void offer(float value, int32_t col) {
    if (!(value == value)) return;  // NaN never competes
    if (size == cap) {
      if (!(value > v[cap - 1])) return;
      --size;  // drop the current last entry
    }
    int64_t pos = size;
    while (pos > 0 && value > v[pos - 1]) {
      v[pos] = v[pos - 1];
      i[pos] = i[pos - 1];
      --pos;
    }
    v[pos] = value;
    i[pos] = col;
    ++size;
  }
};

void select_row(const float* row, int64_t F, const uint8_t* allowed, TopBuffer& buf) {
  int64_t c = 0;
  for (; c + kBlock <= F; c += kBlock) {
    const float thr = buf.threshold();
    int any = 0;
    if (allowed) {
#pragma omp simd reduction(| : any)
      for (int64_t t = 0; t < kBlock; ++t) any |= int(row[c + t] > thr) & int(allowed[c + t] != 0);
    } else {
#pragma omp simd reduction(| : any)
      for (int64_t t = 0; t < kBlock; ++t) any |= int(row[c + t] > thr);
    }
    // -INFINITY threshold: the buffer is not full yet and every value (even -inf) counts.
    if (!any && thr != -INFINITY) continue;
    for (int64_t t = 0; t < kBlock; ++t)
      if (!allowed || allowed[c + t]) buf.offer(row[c + t], int32_t(c + t));
  }
  for (; c < F; ++c)
    if (!allowed || allowed[c]) buf.offer(row[c], int32_t(c));
}

}  // namespace

void topk_rows(const float* x, int64_t N, int64_t F, int64_t K, const uint8_t* allowed,
               int32_t* idx, float* val) {
  SAE_ASSERT(N >= 0 && K >= 0, "negative size");
  SAE_ASSERT(K <= F, "top-k larger than the number of columns");
  SAE_ASSERT(F <= int64_t(INT32_MAX), "column index does not fit int32");
  if (K == 0 || N == 0) return;
#pragma omp parallel
  {
    TopBuffer buf;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      buf.reset(K);
      select_row(x + n * F, F, allowed, buf);
      int32_t* out_i = idx + n * K;
      float* out_v = val + n * K;
      for (int64_t j = 0; j < K; ++j) {
        const bool have = j < buf.size;
        out_i[j] = have ? buf.i[j] : -1;
        out_v[j] = have ? buf.v[j] : 0.0f;
      }
    }
  }
}

}  // namespace saepipe::cpu
