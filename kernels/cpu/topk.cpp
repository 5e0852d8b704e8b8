// Per-row top-k selection.
//
// Shape legend: N tokens, D d_model, F latents, K top-k.
//   x [N,F] -> idx [N,K] (int32), val [N,K], each row sorted by descending value.
//
// K is small next to F (32..256 of up to 131072). Each row appends candidates to a buffer of
// 2K entries (+ one block of slack); when it fills, nth_element keeps the best K and their
// K-th value becomes the threshold that later candidates must strictly beat: amortised O(1)
// per candidate. Blocks of 16 columns are first tested as a whole (a vectorisable "any above
// threshold"), so the common case costs one compare per element; inside a block, candidates
// are appended without branches. Entries are 64-bit keys (order-preserving value bits, then
// the complemented column) so that "larger key" is exactly "larger value, then lower index"
// and the selection compares plain integers. Columns are visited in increasing order, so a
// value equal to the threshold never displaces the earlier (lower) index that holds it.
#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cpu {
namespace {

constexpr int64_t kBlock = 16;

uint64_t make_key(float v, int64_t col) {
  const uint32_t u = std::bit_cast<uint32_t>(v + 0.0f);  // -0 -> +0: equal values, equal keys
  const uint32_t ordered = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (uint64_t(ordered) << 32) | uint64_t(~uint32_t(col));
}
float key_value(uint64_t key) {
  const uint32_t o = uint32_t(key >> 32);
  return std::bit_cast<float>((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}
int32_t key_col(uint64_t key) { return int32_t(~uint32_t(key)); }

struct TopBuffer {
  std::vector<uint64_t> e;
  int64_t n = 0, k = 0;
  bool have_thr = false;  // false until K candidates were kept: then every value enters
  float thr = 0.0f;       // the K-th best value so far, once have_thr

  void reset(int64_t k_) {
    k = k_;
    n = 0;
    have_thr = false;
    e.resize(size_t(2 * k + kBlock));
  }
  void keep_best_k() {
    std::nth_element(e.begin(), e.begin() + (k - 1), e.begin() + n, std::greater<>());
    n = k;
    thr = key_value(e[size_t(k - 1)]);
    have_thr = true;
  }
  // Offers columns [c0, c0+len) of row; len <= kBlock.
  void offer_block(const float* row, int64_t c0, int64_t len, const uint8_t* allowed) {
    uint64_t* out = e.data();
    for (int64_t t = 0; t < len; ++t) {
      const float v = row[c0 + t];
      out[n] = make_key(v, c0 + t);
      // Branch-free append; NaN fails both tests and never enters.
      const bool pass = have_thr ? (v > thr) : (v == v);
      n += int64_t(pass && (!allowed || allowed[c0 + t]));
    }
    // The first K candidates already give a threshold; later, compact at 2K.
    if (n >= (have_thr ? 2 * k : k)) keep_best_k();
  }
  // Leaves the best min(K, candidates) keys in e[0, n), best first.
  void finish() {
    if (n > k) keep_best_k();
    std::sort(e.begin(), e.begin() + n, std::greater<>());
  }
};

void select_row(const float* row, int64_t F, const uint8_t* allowed, TopBuffer& buf) {
  int64_t c = 0;
  for (; c + kBlock <= F; c += kBlock) {
    if (buf.have_thr) {
      const float thr = buf.thr;
      int any = 0;
      if (allowed) {
#pragma omp simd reduction(| : any)
        for (int64_t t = 0; t < kBlock; ++t)
          any |= int(row[c + t] > thr) & int(allowed[c + t] != 0);
      } else {
#pragma omp simd reduction(| : any)
        for (int64_t t = 0; t < kBlock; ++t) any |= int(row[c + t] > thr);
      }
      if (!any) continue;
    }
    buf.offer_block(row, c, kBlock, allowed);
  }
  if (c < F) buf.offer_block(row, c, F - c, allowed);
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
      buf.finish();
      int32_t* out_i = idx + n * K;
      float* out_v = val + n * K;
      for (int64_t j = 0; j < K; ++j) {
        const bool have = j < buf.n;
        out_i[j] = have ? key_col(buf.e[size_t(j)]) : -1;
        out_v[j] = have ? key_value(buf.e[size_t(j)]) : 0.0f;
      }
    }
  }
}

}  // namespace saepipe::cpu
