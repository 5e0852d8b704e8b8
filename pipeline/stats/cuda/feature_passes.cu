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
#include "pipeline/sae/cuda/sae.hpp"
#include "pipeline/sae/latent_shard_merge.hpp"
#include "pipeline/stats/cuda/feature_passes.hpp"
#include "pipeline/stats/example_selection.hpp"
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
// Runs of rows stride over gridDim.y (at most 65535 blocks there).
__global__ void recon_cols_kernel(const float* __restrict__ x, int64_t n, int64_t D, unsigned long long* lo,
                                  unsigned long long* hi) {
  const int64_t d = int64_t(blockIdx.x) * 32 + threadIdx.x % 32;
  if (d >= D) return;
  for (int64_t r0 = int64_t(blockIdx.y) * kColRows; r0 < n; r0 += int64_t(gridDim.y) * kColRows) {
    const int64_t r1 = min(n, r0 + kColRows);
    __int128 acc = 0;
    for (int64_t r = r0 + threadIdx.x / 32; r < r1; r += blockDim.x / 32) acc += to_fixed(double(x[r * D + d]));
    if (acc != 0) atomic_add_128(lo + d, hi + d, acc);
  }
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
                                  const float* __restrict__ max_act, uint64_t seed, int32_t first, uint32_t* group,
                                  uint64_t* key, uint32_t* index) {
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
      key[i] = interval_hash(seed, first + f, row) >> 11;  // priority = -key * 2^-53 (global latent)
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
                             uint64_t seed, int32_t first) {
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
    p = kInterval ? interval_priority(seed, first + f, r) : double(v);
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
  int32_t first;  // the global index of latent 0 here (a latent shard's first), for the interval hash
  DeviceBuffer<double> prio;
  DeviceBuffer<int64_t> row;
  DeviceBuffer<float> act, ctx_act;
  DeviceBuffer<int32_t> ctx_tok, count, seg_begin, seg_end;
  DeviceBuffer<uint32_t> group, group_sorted, group_sorted2, index, index_sorted, index_sorted2;
  DeviceBuffer<uint64_t> key, key_sorted;
  DeviceBuffer<uint8_t> temp;

  Selection(int64_t groups, int64_t slots, int64_t before_, int64_t after_, bool interval_, int64_t bins_,
            uint64_t seed_, int64_t first_, cudaStream_t s)
      : G(groups), S(slots), before(before_), after(after_), Cx(before_ + 1 + after_), bins(bins_),
        interval(interval_), seed(seed_), first(int32_t(first_)) {
    SAE_ASSERT(S >= 1 && S <= kMaxExampleSlots, "example slots must be in [1, " + std::to_string(kMaxExampleSlots) + "]");
    SAE_ASSERT(G >= 0 && G < int64_t(UINT32_MAX), "too many example groups");
    prio.resize(G * S), row.resize(G * S), act.resize(G * S);
    ctx_tok.resize(G * S * Cx), ctx_act.resize(G * S * Cx);
    count.resize(G), seg_begin.resize(G), seg_end.resize(G);
    count.zero(s);
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
                                                               max_act, seed, first, group.data(), key.data(),
                                                               index.data());
    else
      candidates_kernel<false><<<grid_for(M, 256), 256, 0, s>>>(b.idx, b.val, M, b.width, b.first_row, Gs, bins,
                                                                max_act, seed, first, group.data(), key.data(),
                                                                index.data());
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
      merge_kernel<true><<<blocks, 128, 0, s>>>(a, G, seg_begin.data(), seg_end.data(), index_sorted2.data(), b, seed,
                                                first);
    else
      merge_kernel<false><<<blocks, 128, 0, s>>>(a, G, seg_begin.data(), seg_end.data(), index_sorted2.data(), b, seed,
                                                 first);
    SAE_CUDA_LAUNCH_CHECK();
  }

  // This rank's kept examples, merged with every other rank's (collective).
  ExampleSet merge(const MpiEnv& env, int64_t groups_per_feature, cudaStream_t s) const {
    const ExampleSelection mine = ExampleSelection::from_kept(
        G, S, before, after, prio.download(s), row.download(s), act.download(s), ctx_tok.download(s),
        ctx_act.download(s), count.download(s));
    return mine.merge(env, groups_per_feature);
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
void zero(DeviceBuffer<T>& b, int64_t n, cudaStream_t s) {
  b.resize(n);
  b.zero(s);
}
}  // namespace

CudaFeaturePasses::CudaFeaturePasses(int64_t d_in, int64_t d_sae, int64_t hist_bins, const ExampleOptions& opt,
                                     cudaStream_t s, int64_t first_latent)
    : D_(d_in), F_(d_sae), H_(hist_bins), bins_(opt.interval_bins), first_(first_latent), opt_(opt),
      dev_(std::make_unique<Device>()),
      act_sum_(size_t(d_sae)), recon_(d_in) {
  SAE_ASSERT(d_in >= 1 && d_sae >= 1 && hist_bins >= 1, "CudaFeaturePasses: bad shape");
  Device& d = *dev_;
  zero(d.fire, F_, s), zero(d.sum_lo, F_, s), zero(d.sum_hi, F_, s), zero(d.active, 1, s);
  zero(d.rs_lo, 4 + D_, s), zero(d.rs_hi, 4 + D_, s), zero(d.max_bits, F_, s);
  top_ = std::make_unique<Selection>(F_, opt.top, opt.before, opt.after, false, 1, opt.seed, first_, s);
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
    const dim3 grid(unsigned((D_ + 31) / 32), unsigned(std::min<int64_t>(65535, (b.n + kColRows - 1) / kColRows)));
    recon_cols_kernel<<<grid, 256, 0, s>>>(x, b.n, D_, d.rs_lo.data() + 4, d.rs_hi.data() + 4);
    SAE_CUDA_LAUNCH_CHECK();
  }
  top_->offer(b, nullptr, s);
  if (x) n_tokens_ += b.n;  // as ReconstructionSums: a shard that only counts activations counts no tokens
}

void CudaFeaturePasses::first_reduce(const MpiEnv& world, const MpiEnv& latents, cudaStream_t s) {
  Device& d = *dev_;
  const std::vector<unsigned long long> fire = d.fire.download(s), lo = d.sum_lo.download(s),
                                        hi = d.sum_hi.download(s), rlo = d.rs_lo.download(s),
                                        rhi = d.rs_hi.download(s), active = d.active.download(s);
  const std::vector<int> bits = d.max_bits.download(s);
  // This rank's totals in the host classes' form, then FirstPass::reduce's reductions.
  fire_.assign(fire.begin(), fire.end());
  max_.resize(bits.size());
  std::memcpy(max_.data(), bits.data(), bits.size() * sizeof(float));
  act_sum_ = ExactSums(size_t(F_));
  for (int64_t f = 0; f < F_; ++f) act_sum_.add_fixed(size_t(f), join_128(lo[size_t(f)], hi[size_t(f)]));
  recon_ = ReconstructionSums(D_);
  for (size_t i = 0; i < size_t(4 + D_); ++i) recon_.sums.add_fixed(i, join_128(rlo[i], rhi[i]));
  // The CPU adds double(active) per batch: the same integer total, exactly.
  recon_.sums.add_fixed(2, static_cast<__int128>(active[0]) << kFixedFracBits);
  recon_.n_tokens = n_tokens_;
  recon_.sums.allreduce(world);
  recon_.n_tokens = world.allreduce_sum(recon_.n_tokens);
  latents.allreduce_sum(fire_.data(), F_);
  act_sum_.allreduce(latents);
  latents.allreduce_max(max_.data(), F_);
  begin_second(s);
}

const std::vector<float>& CudaFeaturePasses::max_activation() const { return max_; }
const ReconstructionSums& CudaFeaturePasses::recon() const { return recon_; }

ExampleSet CudaFeaturePasses::top_examples(const MpiEnv& env, cudaStream_t s) const { return top_->merge(env, 1, s); }

void CudaFeaturePasses::begin_second(cudaStream_t s) {
  Device& d = *dev_;
  d.max2.upload(max_, s);
  zero(d.hist, F_ * H_, s), zero(d.fine, F_ * SecondPass::kFineBins, s);
  interval_ = std::make_unique<Selection>(F_ * std::max<int64_t>(1, bins_), opt_.interval_per_bin, opt_.before,
                                          opt_.after, true, std::max<int64_t>(1, bins_), opt_.seed, first_, s);
}

void CudaFeaturePasses::second_add(const DeviceCodes& b, cudaStream_t s) {
  SAE_ASSERT(interval_ != nullptr, "second_add before first_reduce");
  const int64_t M = b.n * b.width;
  if (M == 0) return;
  Device& d = *dev_;
  second_hist_kernel<<<grid_for(M, 256), 256, 0, s>>>(b.idx, b.val, M, d.max2.data(), H_, SecondPass::kFineBins,
                                                      d.hist.data(), d.fine.data());
  SAE_CUDA_LAUNCH_CHECK();
  if (bins_ > 0) interval_->offer(b, d.max2.data(), s);
}

void CudaFeaturePasses::second_reduce(const MpiEnv& env, cudaStream_t s) {
  SAE_ASSERT(interval_ != nullptr, "second_reduce before first_reduce");
  const std::vector<unsigned long long> hist = dev_->hist.download(s), fine = dev_->fine.download(s);
  hist_.assign(hist.begin(), hist.end());
  fine_.assign(fine.begin(), fine.end());
  env.allreduce_sum(hist_.data(), int64_t(hist_.size()));
  env.allreduce_sum(fine_.data(), int64_t(fine_.size()));
}

ExampleSet CudaFeaturePasses::interval_examples(const MpiEnv& env, cudaStream_t s) const {
  SAE_ASSERT(interval_ != nullptr, "interval_examples before first_reduce");
  return bins_ > 0 ? interval_->merge(env, bins_, s) : ExampleSet{};
}

// As FirstPass::finish.
void CudaFeaturePasses::finish_first(FeatureStats& fs, double dense_threshold, double ultralow_threshold) const {
  std::vector<double> act_sum(static_cast<size_t>(F_));
  for (int64_t f = 0; f < F_; ++f) act_sum[size_t(f)] = act_sum_.value(size_t(f));
  finish_counts(fs, recon_.n_tokens, F_, fire_.data(), act_sum.data(), max_.data(), dense_threshold, ultralow_threshold);
}

// As SecondPass::finish (needs finish_first's fields).
void CudaFeaturePasses::finish_second(FeatureStats& fs, const std::vector<double>& quantile_levels) const {
  fs.hist_bins = H_;
  fs.hist_counts = hist_;
  finish_quantiles_and_density(fs, fine_.data(), SecondPass::kFineBins, max_.data(), quantile_levels, H_);
}

// ---------------------------------------------------------------- the stage's FeaturePasses

namespace {

// With a grid (latent shards) this rank's latents only, as the CPU passes: the encoder exchanges
// with the shard group through host memory (topk's candidates merged by merge_shard_candidates,
// the float64 reconstruction summed with MPI), the lead shard counts the reconstruction, and the
// per-latent reductions go over the data group.
class CudaStatsPasses final : public FeaturePasses {
 public:
  CudaStatsPasses(const SaeParams& p, const SaeConfig& cfg, int64_t hist_bins, const ExampleOptions& opt,
                  const LatentGrid* grid)
      : D_(p.d_in), grid_(grid), shard_(device_shard(p.d_sae)), stream_(make_stream()),
        sae_(p.d_in, p.d_sae, cfg, GemmPrecision::FP32, grid ? &shard_ : nullptr),
        passes_(p.d_in, p.d_sae, hist_bins, opt, stream_, shard_.first) {
    params_.upload(p.data, stream_);
  }
  ~CudaStatsPasses() override {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  EncodedBatch encode(const float* x, const int32_t* tokens, int64_t first_row, int64_t n, int64_t L) override {
    x_.upload(x, n * D_, stream_);
    tokens_.upload(tokens, n, stream_);
    sae_.encode_decode(params_.data(), x_.data(), n, blas_, stream_);
    const int64_t W = sae_.width();
    idx_.resize(size_t(n * W));
    val_.resize(size_t(n * W));
    copy_out(idx_.data(), sae_.idx(), n * W);
    copy_out(val_.data(), sae_.val(), n * W);
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    last_ = EncodedBatch{first_row, n, L, tokens, idx_.data(), val_.data(), W};
    return last_;
  }
  // Sharded, every shard holds the group's whole reconstruction: the lead counts it.
  void first_add(const float*) override {
    passes_.first_add(device_codes(last_, sae_.idx(), sae_.val(), tokens_.data()), shard_.lead ? x_.data() : nullptr,
                      shard_.lead ? sae_.recon() : nullptr, stream_);
  }
  void first_reduce(const MpiEnv& env) override { passes_.first_reduce(env, latents(env), stream_); }
  ExampleSet top_examples(const MpiEnv& env) override { return passes_.top_examples(latents(env), stream_); }
  void second_add(const EncodedBatch& codes) override {
    if (codes.idx == idx_.data() && codes.n == last_.n) {  // the batch just encoded: its codes are on the device
      passes_.second_add(device_codes(codes, sae_.idx(), sae_.val(), tokens_.data()), stream_);
      return;
    }
    // Codes read back from the scratch file.
    in_idx_.upload(codes.idx, codes.n * codes.width, stream_);
    in_val_.upload(codes.val, codes.n * codes.width, stream_);
    tokens_.upload(codes.tokens, codes.n, stream_);
    passes_.second_add(device_codes(codes, in_idx_.data(), in_val_.data(), tokens_.data()), stream_);
  }
  void second_reduce(const MpiEnv& env) override { passes_.second_reduce(latents(env), stream_); }
  ExampleSet interval_examples(const MpiEnv& env) override {
    return passes_.interval_examples(latents(env), stream_);
  }
  void finish(FeatureStats& fs, double dense_threshold, double ultralow_threshold,
              const std::vector<double>& quantile_levels) const override {
    passes_.finish_first(fs, dense_threshold, ultralow_threshold);
    passes_.finish_second(fs, quantile_levels);
  }
  const ReconstructionSums& recon() const override { return passes_.recon(); }

 private:
  static cudaStream_t make_stream() {
    cudaStream_t s = nullptr;
    SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }
  // The ranks that hold this rank's latents: the data group on a grid, else every rank.
  const MpiEnv& latents(const MpiEnv& env) const { return grid_ ? grid_->data_group() : env; }

  // This rank's latents [first, first + Fs) and the DeviceSae's hooks into the shard group
  // (used only with a grid, and only once the passes are built).
  DeviceLatentShard device_shard(int64_t Fs) {
    DeviceLatentShard sh;
    sh.first = grid_ ? int64_t(grid_->shard()) * Fs : 0;
    sh.total = grid_ ? Fs * grid_->shards() : Fs;
    sh.lead = !grid_ || grid_->shard() == 0;
    sh.merge_top = [this](const int32_t* ii, const float* vi, int64_t N, int64_t W, int64_t K, int32_t* io, float* vo,
                          cudaStream_t s) { merge_top(ii, vi, N, W, K, io, vo, s); };
    sh.sum_rows = [this](double* rows, int64_t N, int64_t D, cudaStream_t s) { sum_rows(rows, N * D, s); };
    return sh;
  }
  // As the CPU's (latent_shard_merge.hpp), through host memory.
  void merge_top(const int32_t* idx_in, const float* val_in, int64_t N, int64_t W, int64_t K, int32_t* idx_out,
                 float* val_out, cudaStream_t s) {
    cand_idx_.resize(size_t(N * W)), cand_val_.resize(size_t(N * W));
    if (N * W > 0) {
      SAE_CUDA_CHECK(cudaMemcpyAsync(cand_idx_.data(), idx_in, sizeof(int32_t) * size_t(N * W), cudaMemcpyDeviceToHost, s));
      SAE_CUDA_CHECK(cudaMemcpyAsync(cand_val_.data(), val_in, sizeof(float) * size_t(N * W), cudaMemcpyDeviceToHost, s));
    }
    SAE_CUDA_CHECK(cudaStreamSynchronize(s));
    const std::vector<char> all = gather_shard_candidates(grid_->shard_group(), cand_idx_.data(), cand_val_.data(), N, W);
    merged_idx_.resize(size_t(N * K)), merged_val_.resize(size_t(N * K));
    merge_shard_candidates(all, grid_->shards(), N, W, K, shard_.first, sae_.layout().F, merged_idx_.data(),
                           merged_val_.data());
    if (N * K > 0) {
      SAE_CUDA_CHECK(cudaMemcpyAsync(idx_out, merged_idx_.data(), sizeof(int32_t) * size_t(N * K), cudaMemcpyHostToDevice, s));
      SAE_CUDA_CHECK(cudaMemcpyAsync(val_out, merged_val_.data(), sizeof(float) * size_t(N * K), cudaMemcpyHostToDevice, s));
    }
    SAE_CUDA_CHECK(cudaStreamSynchronize(s));  // the host vectors are reused by the next call
  }
  // rows [n] (device doubles) summed over the shard group, through host memory.
  void sum_rows(double* rows, int64_t n, cudaStream_t s) {
    rows_host_.resize(size_t(n));
    if (n > 0) SAE_CUDA_CHECK(cudaMemcpyAsync(rows_host_.data(), rows, sizeof(double) * size_t(n), cudaMemcpyDeviceToHost, s));
    SAE_CUDA_CHECK(cudaStreamSynchronize(s));
    grid_->shard_group().allreduce_sum(rows_host_.data(), n);
    if (n > 0) SAE_CUDA_CHECK(cudaMemcpyAsync(rows, rows_host_.data(), sizeof(double) * size_t(n), cudaMemcpyHostToDevice, s));
    SAE_CUDA_CHECK(cudaStreamSynchronize(s));
  }

  static DeviceCodes device_codes(const EncodedBatch& b, const int32_t* idx, const float* val, const int32_t* tokens) {
    return DeviceCodes{b.first_row, b.n, b.sequence_length, tokens, idx, val, b.width};
  }
  template <class T>
  void copy_out(T* host, const T* dev, int64_t n) {
    if (n > 0) SAE_CUDA_CHECK(cudaMemcpyAsync(host, dev, sizeof(T) * size_t(n), cudaMemcpyDeviceToHost, stream_));
  }

  int64_t D_;
  const LatentGrid* grid_;
  DeviceLatentShard shard_;  // first 0 and lead unsharded; before sae_, which keeps a pointer to it
  cudaStream_t stream_;
  Blas blas_;
  DeviceSae sae_;
  CudaFeaturePasses passes_;
  DeviceBuffer<float> params_, x_, in_val_;
  DeviceBuffer<int32_t> tokens_, in_idx_;
  std::vector<int32_t> idx_, cand_idx_, merged_idx_;
  std::vector<float> val_, cand_val_, merged_val_;
  std::vector<double> rows_host_;
  EncodedBatch last_;
};

}  // namespace

std::unique_ptr<FeaturePasses> make_cuda_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                        int64_t hist_bins, const ExampleOptions& opt) {
  return std::make_unique<CudaStatsPasses>(params, config, hist_bins, opt, nullptr);
}

std::unique_ptr<FeaturePasses> make_cuda_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                                int64_t hist_bins, const ExampleOptions& opt,
                                                                const LatentGrid& grid) {
  return std::make_unique<CudaStatsPasses>(params, config, hist_bins, opt, &grid);
}

}  // namespace saepipe::cuda
