// SAE parameters, init, b_dec initialisers, the Adam update and architecture names. The
// forward/backward is in forward_backward.cpp, the float64 reference loss in loss_reference.cpp,
// the architecture-specific pieces in arch_*.cpp.
//
// Shape legend: N tokens, D d_in, O d_out, F d_sae.
#include "pipeline/sae/sae.hpp"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <numbers>
#include <numeric>
#include <string>
#include <utility>

#include "kernels/kernels.hpp"
#include "pipeline/core/counter_rng.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/sae_internal.hpp"

namespace saepipe {

namespace sae_detail {

namespace {
constexpr int64_t kSumCols = 64;
// Columns [d0, d0 + w) (w <= kSumCols) of add_column_sums; cloned for AVX2 / AVX-512 (a
// function of its own: GCC outlines OpenMP regions before cloning).
__attribute__((target_clones("avx512f", "avx2", "default"))) void add_block_column_sums(const float* a, int64_t N,
                                                                                       int64_t D, int64_t d0,
                                                                                       int64_t w, double scale,
                                                                                       double* out) {
  double acc[kSumCols] = {};
  if (w == kSumCols) {  // a constant width the compiler unrolls and vectorises
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < kSumCols; ++d) acc[d] += double(a[n * D + d0 + d]);
  } else {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < w; ++d) acc[d] += double(a[n * D + d0 + d]);
  }
  for (int64_t d = 0; d < w; ++d) out[d0 + d] += scale * acc[d];
}
}  // namespace

void add_column_sums(const float* a, int64_t N, int64_t D, double scale, double* out) {
  const int64_t blocks = (D + kSumCols - 1) / kSumCols;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b)
    add_block_column_sums(a, N, D, b * kSumCols, std::min(kSumCols, D - b * kSumCols), scale, out);
}

namespace {
constexpr int kLanes = 8;
double add_lanes(const double* l) { return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])); }
}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) double row_sum_of_squares(const float* a, int64_t D) {
  double lane[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += double(a[d + l]) * double(a[d + l]);
  for (int l = 0; d < D; ++d, ++l) lane[l] += double(a[d]) * double(a[d]);
  return add_lanes(lane);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) double row_scaled_error(const float* recon, const float* y,
                                                                                    int64_t D, double scale, float* g) {
  double lane[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double e = double(recon[d + l]) - double(y[d + l]);
      lane[l] += e * e;
      g[d + l] = float(scale * e);
    }
  for (int l = 0; d < D; ++d, ++l) {
    const double e = double(recon[d]) - double(y[d]);
    lane[l] += e * e;
    g[d] = float(scale * e);
  }
  return add_lanes(lane);
}

double add_target_sums(const float* y, int64_t N, int64_t D, double* sum_y) {
  add_column_sums(y, N, D, 1.0, sum_y);
  std::vector<double> rows(static_cast<size_t>(N));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) rows[n] = row_sum_of_squares(y + n * D, D);
  double sum = 0;
  for (int64_t n = 0; n < N; ++n) sum += rows[n];
  return sum;
}

void check_config(const SaeParams& p, const SaeConfig& cfg) {
  SAE_ASSERT(p.d_in > 0 && p.d_sae > 0 && p.d_out > 0, "SAE parameters not sized");
  SAE_ASSERT(p.size() == SaeParams::size_for(p.shape()), "parameter buffer size");
  const int64_t total = cfg.shard ? cfg.shard->total : p.d_sae;
  if (cfg.shard) SAE_ASSERT(cfg.shard->first >= 0 && cfg.shard->first + p.d_sae <= total, "latent shard range");
  const Architecture a = cfg.architecture;
  if (a == Architecture::TopK || batch_selection(a))
    SAE_ASSERT(cfg.k >= 1 && cfg.k <= total, "k must be in [1, d_sae], got " + std::to_string(cfg.k));
  SAE_ASSERT(cfg.auxk >= 0, "auxk must be >= 0");
  SAE_ASSERT(cfg.bandwidth > 0, "jumprelu bandwidth must be > 0");
  SAE_ASSERT((a == Architecture::Gated) == p.gated, "gated parameters belong to the gated architecture");
  for (size_t j = 0; j < cfg.prefixes.size(); ++j)
    SAE_ASSERT(cfg.prefixes[j] >= 1 && cfg.prefixes[j] <= total && (j == 0 || cfg.prefixes[j] > cfg.prefixes[j - 1]),
               "matryoshka prefixes must increase within [1, d_sae]");
}

}  // namespace sae_detail

namespace {

// Counter-based normal deviates: the i-th value depends only on (seed, i) (splitmix64 from
// pipeline/core/counter_rng.hpp).
double uniform_open(uint64_t seed, uint64_t counter) {  // in (0, 1)
  const uint64_t bits = splitmix64(splitmix64(seed) + counter * 0x9E3779B97F4A7C15ull);
  return (double(bits >> 11) + 0.5) * 0x1.0p-53;
}
double normal_at(uint64_t seed, uint64_t i) {  // Box-Muller, one deviate per pair
  const double u1 = uniform_open(seed, 2 * i), u2 = uniform_open(seed, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace

using sae_detail::add_column_sums;

SaeParams::SaeParams(int64_t d_in_, int64_t d_sae_) : SaeParams(SaeShape{d_in_, d_sae_}) {}

SaeParams::SaeParams(const SaeShape& s)
    : d_in(s.d_in), d_sae(s.d_sae), d_out(s.d_out > 0 ? s.d_out : s.d_in), transcoder(s.transcoder), skip(s.skip),
      gated(s.gated), layers(s.layers) {
  SAE_ASSERT(d_in > 0 && d_sae > 0 && d_out > 0, "SAE dimensions must be positive");
  SAE_ASSERT(transcoder || d_out == d_in, "only a transcoder writes another width than it reads");
  SAE_ASSERT(transcoder || !skip, "a skip connection belongs to a transcoder");
  SAE_ASSERT(layers >= 1 && d_out % layers == 0, "crosscoder layers must divide d_out");
  data.assign(static_cast<size_t>(size_for(shape())), 0.0f);
}

int64_t SaeParams::size_for(const SaeShape& s) {
  const int64_t O = s.d_out > 0 ? s.d_out : s.d_in, F = s.d_sae;
  return s.d_in * F + F + F * O + O + F + (s.gated ? 2 * F : 0) + (s.skip ? O * s.d_in : 0);
}

void init_tied(SaeParams& p, uint64_t seed, int64_t first_latent) {
  const int64_t F = p.d_sae, D = p.d_in, O = p.d_out, F0 = first_latent;
  auto unit_rows = [F, F0](float* W, int64_t width, uint64_t stream_seed) {
#pragma omp parallel for schedule(static)
    for (int64_t f = 0; f < F; ++f) {
      std::vector<double> row(static_cast<size_t>(width));
      double ss = 0.0;
      for (int64_t d = 0; d < width; ++d) {
        row[d] = normal_at(stream_seed, uint64_t((F0 + f) * width + d));
        ss += row[d] * row[d];
      }
      const double inv = 1.0 / std::sqrt(ss);  // ss > 0 with probability 1
      for (int64_t d = 0; d < width; ++d) W[f * width + d] = float(row[d] * inv);
    }
  };
  std::fill(p.data.begin(), p.data.end(), 0.0f);  // biases, thresholds, r_mag, b_mag, W_skip
  unit_rows(p.W_dec(), O, seed);
  if (p.transcoder)
    unit_rows(p.W_encT(), D, splitmix64(seed ^ 0x7A4E5C0DE5ull));
  else
    std::copy(p.W_dec(), p.W_dec() + F * D, p.W_encT());
}

std::vector<float> row_mean(const float* x, int64_t N, int64_t D) {
  SAE_ASSERT(N > 0 && D > 0, "row_mean of an empty matrix");
  std::vector<double> acc(static_cast<size_t>(D), 0.0);
  add_column_sums(x, N, D, 1.0, acc.data());
  std::vector<float> out(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) out[d] = float(acc[d] / double(N));
  return out;
}

std::vector<float> geometric_median(const float* x, int64_t N, int64_t D, int max_iter,
                                    double tol) {
  SAE_ASSERT(N > 0 && D > 0, "geometric_median of an empty matrix");
  // Rows are processed in fixed chunks whose partial sums are added in chunk order, so the
  // result does not depend on the thread count.
  constexpr int64_t kChunk = 64;
  const int64_t chunks = (N + kChunk - 1) / kChunk;
  const int64_t stride = D + 2;  // per chunk: [sum w*x (D) | sum w | sum of distances]
  std::vector<double> y(static_cast<size_t>(D), 0.0);
  std::vector<double> part(static_cast<size_t>(chunks * stride));
  std::vector<double> num(static_cast<size_t>(D));
  add_column_sums(x, N, D, 1.0 / double(N), y.data());  // start at the mean

  // One pass over the rows with the current y; returns (sum w, sum dist), num = sum w*x.
  auto pass = [&](double floor_dist) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      double* pc = part.data() + c * stride;
      std::fill(pc, pc + stride, 0.0);
      for (int64_t n = c * kChunk; n < std::min(N, (c + 1) * kChunk); ++n) {
        const float* xn = x + n * D;
        double ss = 0.0;
        for (int64_t d = 0; d < D; ++d) {
          const double e = double(xn[d]) - y[d];
          ss += e * e;
        }
        const double dist = std::sqrt(ss);
        // Weiszfeld weight 1/dist; a row (almost) at y would divide by ~0, so clamp.
        const double w = 1.0 / std::max(dist, floor_dist);
        for (int64_t d = 0; d < D; ++d) pc[d] += w * double(xn[d]);
        pc[D] += w;
        pc[D + 1] += dist;
      }
    }
    std::fill(num.begin(), num.end(), 0.0);
    double den = 0.0, sum_dist = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
      const double* pc = part.data() + c * stride;
      for (int64_t d = 0; d < D; ++d) num[d] += pc[d];
      den += pc[D];
      sum_dist += pc[D + 1];
    }
    return std::pair{den, sum_dist};
  };

  // Scale of the data: mean distance to the mean. Zero means all rows are equal.
  const double scale = pass(1.0).second / double(N);
  if (scale > 0.0) {
    const double floor_dist = 1e-12 * scale;
    for (int it = 0; it < max_iter; ++it) {
      const double den = pass(floor_dist).first;
      double step = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        const double yn = num[d] / den;
        step += (yn - y[d]) * (yn - y[d]);
        y[d] = yn;
      }
      if (std::sqrt(step) <= tol * scale) break;
    }
  }
  std::vector<float> out(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) out[d] = float(y[d]);
  return out;
}

void sae_apply_gradient(SaeParams& p, std::vector<float>& grad, AdamState& state,
                        const AdamConfig& cfg, bool unit_norm_decoder) {
  const int64_t n = p.size();
  SAE_ASSERT(int64_t(grad.size()) == n, "gradient size does not match the parameters");
  if (state.m.empty() && state.v.empty() && state.t == 0) {
    state.m.assign(size_t(n), 0.0f);
    state.v.assign(size_t(n), 0.0f);
  }
  SAE_ASSERT(int64_t(state.m.size()) == n && int64_t(state.v.size()) == n,
             "Adam moments do not match the parameters");
  ++state.t;
  if (unit_norm_decoder) cpu::project_out_parallel(p.W_dec(), grad.data() + p.off_W_dec(), p.d_sae, p.d_out);
  // Adam is elementwise: [.. b_dec] at lr, log_threshold [F] at its own rate, the rest at lr.
  const int64_t t0 = p.off_log_threshold(), t1 = t0 + p.d_sae;
  const float lr_threshold = cfg.lr * cfg.threshold_lr_scale;
  auto segment = [&](int64_t a, int64_t b, float lr) {
    if (b > a)
      cpu::adam_step(p.data.data() + a, grad.data() + a, state.m.data() + a, state.v.data() + a, b - a, lr,
                     cfg.beta1, cfg.beta2, cfg.eps, state.t);
  };
  if (lr_threshold == cfg.lr) {
    segment(0, n, cfg.lr);
  } else {
    segment(0, t0, cfg.lr);
    segment(t0, t1, lr_threshold);
    segment(t1, n, cfg.lr);
  }
  if (unit_norm_decoder) cpu::normalize_rows(p.W_dec(), p.d_sae, p.d_out);
}

Architecture parse_architecture(const std::string& name) {
  if (name == "topk") return Architecture::TopK;
  if (name == "batchtopk") return Architecture::BatchTopK;
  if (name == "relu") return Architecture::ReLU;
  if (name == "jumprelu") return Architecture::JumpReLU;
  if (name == "matryoshka") return Architecture::Matryoshka;
  if (name == "gated") return Architecture::Gated;
  user_error("architecture '" + name + "' is not one of topk, batchtopk, relu, jumprelu, matryoshka, gated");
}

std::string to_string(Architecture a) {
  switch (a) {
    case Architecture::TopK: return "topk";
    case Architecture::BatchTopK: return "batchtopk";
    case Architecture::ReLU: return "relu";
    case Architecture::JumpReLU: return "jumprelu";
    case Architecture::Matryoshka: return "matryoshka";
    case Architecture::Gated: return "gated";
  }
  return "?";
}

}  // namespace saepipe
