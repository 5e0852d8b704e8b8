// The stats passes on the GPU (feature_passes.hpp). Every CUDA call is checked.
//
// Shape legend: n tokens in a batch, W slots per token, M = n*W candidate slots, D d_in,
// F d_sae, H histogram bins, G selection groups, S slots per group, Cx context tokens.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device_util.cuh"
#include "pipeline/stats/cuda/feature_passes.hpp"
#include "pipeline/stats/selection_rules.hpp"

namespace saepipe::cuda {

namespace {

// ---------------------------------------------------------------- shared rules

// acc (two words, low first) += q modulo 2^128; atomics in any order give the same total.
__device__ __forceinline__ void atomic_add_128(unsigned long long* lo, unsigned long long* hi, __int128 q) {
  const unsigned long long ql = static_cast<unsigned long long>(q);
  const unsigned long long qh = static_cast<unsigned long long>(q >> 64);
  const unsigned long long old = atomicAdd(lo, ql);
  const unsigned long long carry = (old + ql < old) ? 1ull : 0ull;
  if (qh + carry != 0) atomicAdd(hi, qh + carry);
}

__int128 join_128(unsigned long long lo, unsigned long long hi) {
  return static_cast<__int128>((static_cast<unsigned __int128>(hi) << 64) | lo);
}

// ExampleSelection's order: higher priority first, ties to the lower row.
__device__ __forceinline__ bool better(double p, int64_t r, double q, int64_t s) { return p > q || (p == q && r < s); }

int bits_for(uint64_t v) {  // bits needed to hold v
  int b = 0;
  while (b < 64 && (v >> b) != 0) ++b;
  return std::max(b, 1);
}

// ---------------------------------------------------------------- pass 1: counts, sums, maxima

__global__ void first_counts_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t M,
                                    unsigned long long* fire, int* max_bits, unsigned long long* sum_lo,
                                    unsigned long long* sum_hi, unsigned long long* active) {
  unsigned long long mine = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < M; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[i];
    const float v = val[i];
    if (f < 0 || !(v > 0.0f)) continue;
    ++mine;
    atomicAdd(fire + f, 1ull);
    atomicMax(max_bits + f, __float_as_int(v));  // positive floats order as their bits
    atomic_add_128(sum_lo + f, sum_hi + f, to_fixed(double(v)));
  }
  if (mine) atomicAdd(active, mine);
}

// Per token, in the CPU's order (ReconstructionSums::add): sse, |x|^2, cos(x, x_hat).
__global__ void recon_rows_kernel(const float* __restrict__ x, const float* __restrict__ recon, int64_t n, int64_t D,
                                  unsigned long long* lo, unsigned long long* hi) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
    double e2 = 0, x2 = 0, r2 = 0, xr = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double xv = x[t * D + d], rv = recon[t * D + d];
      const double e = __dsub_rn(rv, xv);
      e2 = __dadd_rn(e2, __dmul_rn(e, e));
      x2 = __dadd_rn(x2, __dmul_rn(xv, xv));
      r2 = __dadd_rn(r2, __dmul_rn(rv, rv));
      xr = __dadd_rn(xr, __dmul_rn(xv, rv));
    }
    atomic_add_128(lo + 0, hi + 0, to_fixed(e2));
    atomic_add_128(lo + 1, hi + 1, to_fixed(x2));
    const double cosine = (x2 > 0 && r2 > 0) ? __ddiv_rn(xr, __dsqrt_rn(__dmul_rn(x2, r2))) : 0.0;
    atomic_add_128(lo + 3, hi + 3, to_fixed(cosine));
  }
}

// sum x[:, d] per column: a thread sums its column over a run of rows exactly (fixed point),
// then adds that once. Block: 32 columns x 8 row lanes.
constexpr int kColRows = 256;  // rows per blockIdx.y
__global__ void recon_cols_kernel(const float* __restrict__ x, int64_t n, int64_t D, unsigned long long* lo,
                                  unsigned long long* hi) {
  const int64_t d = int64_t(blockIdx.x) * 32 + threadIdx.x % 32;
  if (d >= D) return;
  const int64_t r0 = int64_t(blockIdx.y) * kColRows, r1 = min(n, r0 + kColRows);
  __int128 acc = 0;
  for (int64_t r = r0 + threadIdx.x / 32; r < r1; r += blockDim.x / 32) acc += to_fixed(double(x[r * D + d]));
  if (acc != 0) atomic_add_128(lo + d, hi + d, acc);
}

// ---------------------------------------------------------------- pass 2: histograms

__global__ void second_hist_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t M,
                                   const float* __restrict__ max_act, int64_t H, int64_t fine_bins,
                                   unsigned long long* hist, unsigned long long* fine) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < M; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[i];
    const float v = val[i];
    if (f < 0 || !(v > 0.0f)) continue;
    const float hi = max_act[f];
    atomicAdd(hist + int64_t(f) * H + bin_of(v, hi, H), 1ull);
    atomicAdd(fine + int64_t(f) * fine_bins + bin_of(v, hi, fine_bins), 1ull);
  }
}

// ---------------------------------------------------------------- example selections

// Each slot of the batch becomes a candidate: its group (G for none: sorts last), a 64-bit key
// that orders candidates of one group best first, and its own index (sorting is stable, so
// equal keys keep the slots' row-major order: ties to the lower row).
template <bool kInterval>
__global__ void candidates_kernel(const int32_t* __restrict__ idx, const float* __restrict__ val, int64_t M,
                                  int64_t width, int64_t first_row, uint32_t G, int64_t bins,
                                  const float* __restrict__ max_act, uint64_t seed, uint32_t* group, uint64_t* key,
                                  uint32_t* index) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < M; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t f = idx[i];
    const float v = val[i];
    index[i] = uint32_t(i);
    if (f < 0 || !(v > 0.0f)) {
      group[i] = G;
      key[i] = ~0ull;
      continue;
    }
    if (kInterval) {
      const int64_t row = first_row + i / width;
      group[i] = uint32_t(int64_t(f) * bins + bin_of(v, max_act[f], bins));
      key[i] = interval_hash(seed, f, row) >> 11;  // priority = -key * 2^-53
    } else {
      group[i] = uint32_t(f);
      key[i] = 0xFFFFFFFFull - uint64_t(__float_as_uint(v));  // priority = v > 0: larger first
    }
  }
}

__global__ void gather_kernel(const uint32_t* __restrict__ order, const uint32_t* __restrict__ group, int64_t M,
                              uint32_t* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < M; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = group[order[i]];
}

__global__ void segments_kernel(const uint32_t* __restrict__ g_sorted, int64_t M, uint32_t G, int32_t* begin,
                                int32_t* end) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < M; i += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t g = g_sorted[i];
    if (g >= G) continue;
    if (i == 0 || g_sorted[i - 1] != g) begin[g] = int32_t(i);
    if (i == M - 1 || g_sorted[i + 1] != g) end[g] = int32_t(i + 1);
  }
}

struct SelArrays {
  double* prio;
  int64_t* row;
  float* act;
  int32_t* ctx_tok;
  float* ctx_act;
  int32_t* count;
  int64_t S, before, after, Cx;
};

// EncodedBatch::activation and ::context, on the device.
__device__ float activation_at(const DeviceCodes& b, int64_t row, int32_t f) {
  const int64_t t = row - b.first_row;
  for (int64_t j = 0; j < b.width; ++j)
    if (b.idx[t * b.width + j] == f) return b.val[t * b.width + j];
  return 0.0f;
}
__device__ void write_context(const DeviceCodes& b, int64_t row, int32_t f, int64_t before, int64_t after,
                              int32_t* tok, float* act) {
  const int64_t L = b.sequence_length;
  const int64_t seq_start = (row / L) * L;
  const int64_t lo = max(seq_start, max(b.first_row, row - before));
  const int64_t hi = min(seq_start + L, min(b.first_row + b.n, row + after + 1));
  for (int64_t w = row - before, c = 0; w <= row + after; ++w, ++c) {
    const bool inside = w >= lo && w < hi;
    tok[c] = inside ? b.tokens[w - b.first_row] : -1;
    act[c] = inside ? activation_at(b, w, f) : 0.0f;
  }
}

// One thread per group: merges the batch's best min(len, S) candidates (sorted best first)
// into the kept list (sorted best first), in place: the kept entries only move to later
// slots, so writing from the last slot down never overwrites an entry still to be moved.
template <bool kInterval>
__global__ void merge_kernel(SelArrays s, int64_t G, const int32_t* __restrict__ seg_begin,
                             const int32_t* __restrict__ seg_end, const uint32_t* __restrict__ order, DeviceCodes b,
                             uint64_t seed) {
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= G) return;
  const int64_t len = seg_end[g] - seg_begin[g];
  if (len <= 0) return;
  const int64_t S = s.S, base = g * S, take = min(len, S), c = s.count[g];
  const int64_t new_count = min(c + take, S);
  auto cand = [&](int64_t j, double& p, int64_t& r, float& v, int32_t& f) {
    const uint32_t u = order[seg_begin[g] + j];
    f = b.idx[u];
    v = b.val[u];
    r = b.first_row + int64_t(u) / b.width;
    p = kInterval ? interval_priority(seed, f, r) : double(v);
  };
  int16_t choice[kMaxExampleSlots];  // >= 0: kept entry; < 0: batch candidate -(j + 1)
  int64_t i = 0, j = 0;
  for (int64_t k = 0; k < new_count; ++k) {
    bool keep;
    if (i >= c) {
      keep = false;
    } else if (j >= take) {
      keep = true;
    } else {
      double p;
      int64_t r;
      float v;
      int32_t f;
      cand(j, p, r, v, f);
      keep = better(s.prio[base + i], s.row[base + i], p, r);
    }
    choice[k] = keep ? int16_t(i++) : int16_t(-(++j));
  }
  for (int64_t k = new_count - 1; k >= 0; --k) {
    const int64_t dst = base + k;
    if (choice[k] >= 0) {
      const int64_t src = base + choice[k];
      if (src == dst) continue;
      s.prio[dst] = s.prio[src];
      s.row[dst] = s.row[src];
      s.act[dst] = s.act[src];
      for (int64_t q = 0; q < s.Cx; ++q) {
        s.ctx_tok[dst * s.Cx + q] = s.ctx_tok[src * s.Cx + q];
        s.ctx_act[dst * s.Cx + q] = s.ctx_act[src * s.Cx + q];
      }
    } else {
      double p;
      int64_t r;
      float v;
      int32_t f;
      cand(-int64_t(choice[k]) - 1, p, r, v, f);
      s.prio[dst] = p;
      s.row[dst] = r;
      s.act[dst] = v;
      write_context(b, r, f, s.before, s.after, s.ctx_tok + dst * s.Cx, s.ctx_act + dst * s.Cx);
    }
  }
  s.count[g] = int32_t(new_count);
}

}  // namespace

// ---------------------------------------------------------------- selections

struct CudaFeaturePasses::Selection {
  int64_t G, S, before, after, Cx, bins;
  bool interval;
  uint64_t seed;
  DeviceBuffer<double> prio;
  DeviceBuffer<int64_t> row;
  DeviceBuffer<float> act, ctx_act;
  DeviceBuffer<int32_t> ctx_tok, count, seg_begin, seg_end;
  DeviceBuffer<uint32_t> group, group_sorted, group_sorted2, index, index_sorted, index_sorted2;
  DeviceBuffer<uint64_t> key, key_sorted;
  DeviceBuffer<uint8_t> temp;

  Selection(int64_t groups, int64_t slots, int64_t before_, int64_t after_, bool interval_, int64_t bins_,
            uint64_t seed_)
      : G(groups), S(slots), before(before_), after(after_), Cx(before_ + 1 + after_), bins(bins_),
        interval(interval_), seed(seed_) {
    SAE_ASSERT(S >= 1 && S <= kMaxExampleSlots, "example slots must be in [1, " + std::to_string(kMaxExampleSlots) + "]");
    SAE_ASSERT(G >= 0 && G < int64_t(UINT32_MAX), "too many example groups");
    prio.resize(G * S), row.resize(G * S), act.resize(G * S);
    ctx_tok.resize(G * S * Cx), ctx_act.resize(G * S * Cx);
    count.resize(G), seg_begin.resize(G), seg_end.resize(G);
    if (G > 0) SAE_CUDA_CHECK(cudaMemset(count.data(), 0, size_t(G) * sizeof(int32_t)));
  }

  void offer(const DeviceCodes& b, const float* max_act, cudaStream_t s) {
    const int64_t M = b.n * b.width;
    if (M == 0 || G == 0) return;
    SAE_ASSERT(M < int64_t(INT_MAX), "batch too large for one sort");
    if (group.size() < M) {
      group.resize(M), group_sorted.resize(M), group_sorted2.resize(M);
      index.resize(M), index_sorted.resize(M), index_sorted2.resize(M);
      key.resize(M), key_sorted.resize(M);
    }
    const uint32_t Gs = uint32_t(G);
    if (interval)
      candidates_kernel<true><<<grid_for(M, 256), 256, 0, s>>>(b.idx, b.val, M, b.width, b.first_row, Gs, bins,
                                                               max_act, seed, group.data(), key.data(), index.data());
    else
      candidates_kernel<false><<<grid_for(M, 256), 256, 0, s>>>(b.idx, b.val, M, b.width, b.first_row, Gs, bins,
                                                                max_act, seed, group.data(), key.data(), index.data());
    SAE_CUDA_LAUNCH_CHECK();
    // Sort by key, then (stably) by group: (group, key, slot order).
    // Keys: 32 bits (float bits) or 53 (hash); groups: enough bits for G (the sentinel).
    const int key_bits = interval ? 53 : 32, group_bits = bits_for(uint64_t(G));
    size_t t1 = 0, t2 = 0;
    SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, t1, key.data(), key_sorted.data(), index.data(),
                                                   index_sorted.data(), int(M), 0, key_bits, s));
    SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, t2, group_sorted.data(), group_sorted2.data(),
                                                   index_sorted.data(), index_sorted2.data(), int(M), 0, group_bits,
                                                   s));
    const size_t need = std::max(t1, t2);
    if (size_t(temp.size()) < need) temp.resize(int64_t(need));
    size_t have = size_t(temp.size());
    // Invalid slots (key ~0) tie with nothing that matters: the group sort puts them last.
    SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), have, key.data(), key_sorted.data(), index.data(),
                                                   index_sorted.data(), int(M), 0, key_bits, s));
    gather_kernel<<<grid_for(M, 256), 256, 0, s>>>(index_sorted.data(), group.data(), M, group_sorted.data());
    SAE_CUDA_LAUNCH_CHECK();
    have = size_t(temp.size());
    SAE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), have, group_sorted.data(), group_sorted2.data(),
                                                   index_sorted.data(), index_sorted2.data(), int(M), 0, group_bits,
                                                   s));
    SAE_CUDA_CHECK(cudaMemsetAsync(seg_begin.data(), 0, size_t(G) * sizeof(int32_t), s));
    SAE_CUDA_CHECK(cudaMemsetAsync(seg_end.data(), 0, size_t(G) * sizeof(int32_t), s));
    segments_kernel<<<grid_for(M, 256), 256, 0, s>>>(group_sorted2.data(), M, Gs, seg_begin.data(), seg_end.data());
    SAE_CUDA_LAUNCH_CHECK();
    const SelArrays a{prio.data(), row.data(), act.data(), ctx_tok.data(), ctx_act.data(), count.data(),
                      S,           before,     after,      Cx};
    const unsigned blocks = unsigned((G + 127) / 128);
    if (interval)
      merge_kernel<true><<<blocks, 128, 0, s>>>(a, G, seg_begin.data(), seg_end.data(), index_sorted2.data(), b, seed);
    else
      merge_kernel<false><<<blocks, 128, 0, s>>>(a, G, seg_begin.data(), seg_end.data(), index_sorted2.data(), b, seed);
    SAE_CUDA_LAUNCH_CHECK();
  }

  ExampleSet download(int64_t groups_per_feature, cudaStream_t s) const {
    SAE_CUDA_CHECK(cudaStreamSynchronize(s));
    ExampleSet out;
    out.per_feature = groups_per_feature * S;
    out.row = row.download();
    out.activation = act.download();
    out.ctx_tokens = ctx_tok.download();
    out.ctx_acts = ctx_act.download();
    const std::vector<int32_t> n = count.download();
    for (int64_t g = 0; g < G; ++g)
      for (int64_t k = n[size_t(g)]; k < S; ++k) {
        const size_t i = size_t(g * S + k);
        out.row[i] = -1;
        out.activation[i] = 0.0f;
        std::fill_n(out.ctx_tokens.begin() + int64_t(i) * Cx, Cx, -1);
        std::fill_n(out.ctx_acts.begin() + int64_t(i) * Cx, Cx, 0.0f);
      }
    return out;
  }
};

// ---------------------------------------------------------------- the passes

struct CudaFeaturePasses::Device {
  DeviceBuffer<unsigned long long> fire, sum_lo, sum_hi, active, rs_lo, rs_hi, hist, fine;
  DeviceBuffer<int> max_bits;
  DeviceBuffer<float> max2;
};

namespace {
template <class T>
void zero(DeviceBuffer<T>& b, int64_t n) {
  b.resize(n);
  if (n > 0) SAE_CUDA_CHECK(cudaMemset(b.data(), 0, sizeof(T) * size_t(n)));
}
}  // namespace

CudaFeaturePasses::CudaFeaturePasses(int64_t d_in, int64_t d_sae, int64_t hist_bins, const ExampleOptions& opt)
    : D_(d_in), F_(d_sae), H_(hist_bins), bins_(opt.interval_bins), opt_(opt), dev_(std::make_unique<Device>()) {
  SAE_ASSERT(d_in >= 1 && d_sae >= 1 && hist_bins >= 1, "CudaFeaturePasses: bad shape");
  Device& d = *dev_;
  zero(d.fire, F_), zero(d.sum_lo, F_), zero(d.sum_hi, F_), zero(d.active, 1);
  zero(d.rs_lo, 4 + D_), zero(d.rs_hi, 4 + D_), zero(d.max_bits, F_);
  top_ = std::make_unique<Selection>(F_, opt.top, opt.before, opt.after, false, 1, opt.seed);
}

CudaFeaturePasses::~CudaFeaturePasses() = default;

void CudaFeaturePasses::first_add(const DeviceCodes& b, const float* x, const float* recon, cudaStream_t s) {
  SAE_ASSERT((x == nullptr) == (recon == nullptr), "first_add: x and recon go together");
  const int64_t M = b.n * b.width;
  Device& d = *dev_;
  if (M > 0) {
    first_counts_kernel<<<grid_for(M, 256), 256, 0, s>>>(b.idx, b.val, M, d.fire.data(), d.max_bits.data(),
                                                         d.sum_lo.data(), d.sum_hi.data(), d.active.data());
    SAE_CUDA_LAUNCH_CHECK();
  }
  if (x && b.n > 0) {
    recon_rows_kernel<<<grid_for(b.n, 128), 128, 0, s>>>(x, recon, b.n, D_, d.rs_lo.data(), d.rs_hi.data());
    SAE_CUDA_LAUNCH_CHECK();
    const dim3 grid(unsigned((D_ + 31) / 32), unsigned((b.n + kColRows - 1) / kColRows));
    recon_cols_kernel<<<grid, 256, 0, s>>>(x, b.n, D_, d.rs_lo.data() + 4, d.rs_hi.data() + 4);
    SAE_CUDA_LAUNCH_CHECK();
  }
  top_->offer(b, nullptr, s);
  n_tokens_ += b.n;
}

std::vector<float> CudaFeaturePasses::max_activation(cudaStream_t s) const {
  SAE_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<int> bits = dev_->max_bits.download();
  std::vector<float> out(bits.size());
  std::memcpy(out.data(), bits.data(), bits.size() * sizeof(float));
  return out;
}

void CudaFeaturePasses::begin_second(const std::vector<float>& max_activation, cudaStream_t s) {
  SAE_ASSERT(int64_t(max_activation.size()) == F_, "begin_second: one maximum per latent");
  SAE_CUDA_CHECK(cudaStreamSynchronize(s));
  Device& d = *dev_;
  d.max2.upload(max_activation);
  zero(d.hist, F_ * H_), zero(d.fine, F_ * SecondPass::kFineBins);
  interval_ = std::make_unique<Selection>(F_ * std::max<int64_t>(1, bins_), opt_.interval_per_bin, opt_.before,
                                          opt_.after, true, std::max<int64_t>(1, bins_), opt_.seed);
}

void CudaFeaturePasses::second_add(const DeviceCodes& b, cudaStream_t s) {
  SAE_ASSERT(interval_ != nullptr, "second_add before begin_second");
  const int64_t M = b.n * b.width;
  if (M == 0) return;
  Device& d = *dev_;
  second_hist_kernel<<<grid_for(M, 256), 256, 0, s>>>(b.idx, b.val, M, d.max2.data(), H_, SecondPass::kFineBins,
                                                      d.hist.data(), d.fine.data());
  SAE_CUDA_LAUNCH_CHECK();
  if (bins_ > 0) interval_->offer(b, d.max2.data(), s);
}

// As FirstPass::finish.
void CudaFeaturePasses::finish_first(FeatureStats& fs, double dense_threshold, double ultralow_threshold,
                                     cudaStream_t s) const {
  SAE_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<unsigned long long> fire = dev_->fire.download(), lo = dev_->sum_lo.download(),
                                        hi = dev_->sum_hi.download();
  const std::vector<float> mx = max_activation(s);
  std::vector<int64_t> count(fire.begin(), fire.end());
  std::vector<double> act_sum(static_cast<size_t>(F_));
  for (int64_t f = 0; f < F_; ++f) act_sum[size_t(f)] = from_fixed(join_128(lo[size_t(f)], hi[size_t(f)]));
  finish_counts(fs, n_tokens_, F_, count.data(), act_sum.data(), mx.data(), dense_threshold, ultralow_threshold);
}

// As SecondPass::finish (needs finish_first's fields).
void CudaFeaturePasses::finish_second(FeatureStats& fs, const std::vector<double>& quantile_levels,
                                      cudaStream_t s) const {
  SAE_ASSERT(interval_ != nullptr, "finish_second before begin_second");
  SAE_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<unsigned long long> hist = dev_->hist.download(), fine_u = dev_->fine.download();
  const std::vector<float> mx = dev_->max2.download();
  const std::vector<int64_t> fine(fine_u.begin(), fine_u.end());
  constexpr int64_t kFine = SecondPass::kFineBins;
  fs.hist_bins = H_;
  fs.hist_counts.assign(hist.begin(), hist.end());
  finish_quantiles_and_density(fs, fine.data(), kFine, mx.data(), quantile_levels, H_);
}

ExampleSet CudaFeaturePasses::top_examples(cudaStream_t s) const { return top_->download(1, s); }

ExampleSet CudaFeaturePasses::interval_examples(cudaStream_t s) const {
  SAE_ASSERT(interval_ != nullptr, "interval_examples before begin_second");
  return bins_ > 0 ? interval_->download(bins_, s) : ExampleSet{};
}

std::vector<double> CudaFeaturePasses::recon_sums(cudaStream_t s) const {
  SAE_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<unsigned long long> lo = dev_->rs_lo.download(), hi = dev_->rs_hi.download(),
                                        active = dev_->active.download();
  std::vector<double> out(size_t(4 + D_));
  for (size_t i = 0; i < out.size(); ++i) out[i] = from_fixed(join_128(lo[i], hi[i]));
  out[2] = from_fixed(static_cast<__int128>(active[0]) << kFixedFracBits);  // sum of double(active) per batch, exactly
  return out;
}

// ---------------------------------------------------------------- TopK encoder

CudaTopKEncoder::CudaTopKEncoder(const SaeParams& p, int64_t k, GemmPrecision precision, int64_t chunk)
    : D_(p.d_in), F_(p.d_sae), k_(k), chunk_(chunk), precision_(precision) {
  SAE_ASSERT(k >= 1 && k <= kMaxTopK && k <= F_, "CudaTopKEncoder: k out of range");
  SAE_ASSERT(chunk >= 1, "CudaTopKEncoder: chunk must be positive");
  W_encT_.upload(p.W_encT(), D_ * F_);
  b_enc_.upload(p.b_enc(), F_);
  W_dec_.upload(p.W_dec(), D_ * F_);
  b_dec_.upload(p.b_dec(), D_);
}

void CudaTopKEncoder::encode(const float* x, int64_t n, Blas& blas, cudaStream_t s) {
  if (n == 0) return;
  if (idx_.size() < n * k_) idx_.resize(n * k_), val_.resize(n * k_);
  if (recon_.size() < n * D_) recon_.resize(n * D_), xc_.resize(n * D_);
  const int64_t rows = std::min(n, chunk_);
  if (pre_.size() < rows * F_) pre_.resize(rows * F_);
  center_rows(x, b_dec_.data(), n, D_, xc_.data(), nullptr, s);
  for (int64_t r0 = 0; r0 < n; r0 += chunk_) {
    const int64_t m = std::min(chunk_, n - r0);
    // pre [m,F] = xc [m,D] W_encT^T; + b_enc inside the top-k (one float add, as on the CPU).
    matmul(false, true, m, F_, D_, 1.0f, xc_.data() + r0 * D_, D_, W_encT_.data(), D_, 0.0f, pre_.data(), F_,
           precision_, blas, s);
    topk_rows(pre_.data(), m, F_, k_, nullptr, idx_.data() + r0 * k_, val_.data() + r0 * k_, s, b_enc_.data());
  }
  relu_slots(idx_.data(), val_.data(), n * k_, s);
  sparse_decode(idx_.data(), val_.data(), n, k_, W_dec_.data(), b_dec_.data(), D_, recon_.data(), s);
}

}  // namespace saepipe::cuda
