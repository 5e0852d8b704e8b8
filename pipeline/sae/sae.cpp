// The shared SAE forward/backward, reference loss, init and update for every architecture;
// the architecture-specific selection and penalties are in arch_*.cpp.
//
// Shape legend: N tokens, D d_in, F d_sae, K k, W selection width, A auxk (effective:
// min(auxk, #dead)).
//   x, xc, recon, g [N,D]; pre [N,F]; idx, val, dval [N,W]; aux_* [N,A].
//   Parameter layout (SaeParams): W_encT [F,D] | b_enc [F] | W_dec [F,D] | b_dec [D] | log_threshold [F].
//
// Convention: a slot whose z is 0 is not active, so it is stored as idx = -1, val = 0 (the
// same "empty slot" the kernels skip).
// Every gradient sum runs in an order fixed by token and latent indices, never by thread.
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

namespace saepipe {
namespace {

template <class T>
void grow(std::vector<T>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
}

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

// out[d] += scale * sum_n a[n, d], summed in increasing n per column (deterministic);
// threads split the columns.
void add_column_sums(const float* a, int64_t N, int64_t D, double scale, double* out) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (D + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t d0 = b * kCols, d1 = std::min(D, d0 + kCols);
    double acc[kCols] = {};
    for (int64_t n = 0; n < N; ++n) {
      const float* row = a + n * D;
      for (int64_t d = d0; d < d1; ++d) acc[d - d0] += double(row[d]);
    }
    for (int64_t d = d0; d < d1; ++d) out[d] += scale * acc[d - d0];
  }
}

void check_config(const SaeParams& p, const SaeConfig& cfg) {
  SAE_ASSERT(p.d_in > 0 && p.d_sae > 0, "SAE parameters not sized");
  SAE_ASSERT(p.size() == SaeParams::size_for(p.d_in, p.d_sae), "parameter buffer size");
  if (cfg.architecture == Architecture::TopK || cfg.architecture == Architecture::BatchTopK)
    SAE_ASSERT(cfg.k >= 1 && cfg.k <= p.d_sae, "k must be in [1, d_sae], got " + std::to_string(cfg.k));
  SAE_ASSERT(cfg.auxk >= 0, "auxk must be >= 0");
  SAE_ASSERT(cfg.bandwidth > 0, "jumprelu bandwidth must be > 0");
}

}  // namespace

SaeParams::SaeParams(int64_t d_in_, int64_t d_sae_)
    : d_in(d_in_), d_sae(d_sae_), data(static_cast<size_t>(size_for(d_in_, d_sae_)), 0.0f) {
  SAE_ASSERT(d_in_ > 0 && d_sae_ > 0, "SAE dimensions must be positive");
}

void init_tied(SaeParams& p, uint64_t seed) {
  const int64_t F = p.d_sae, D = p.d_in;
  float* W_dec = p.W_dec();
#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < F; ++f) {
    std::vector<double> row(static_cast<size_t>(D));
    double ss = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      row[d] = normal_at(seed, uint64_t(f * D + d));
      ss += row[d] * row[d];
    }
    const double inv = 1.0 / std::sqrt(ss);  // ss > 0 with probability 1
    for (int64_t d = 0; d < D; ++d) W_dec[f * D + d] = float(row[d] * inv);
  }
  std::copy(W_dec, W_dec + F * D, p.W_encT());
  std::fill(p.b_enc(), p.b_enc() + F, 0.0f);
  std::fill(p.b_dec(), p.b_dec() + D, 0.0f);
  std::fill(p.log_threshold(), p.log_threshold() + F, 0.0f);
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

void sae_encode_decode(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                       int64_t global_batch, SaeWorkspace& ws, int64_t lead, int64_t tail) {
  check_config(p, cfg);
  SAE_ASSERT(N >= 0 && lead >= 0 && tail >= 0, "negative token count");
  const int64_t D = p.d_in, F = p.d_sae, N_ext = lead + N + tail;
  grow(ws.xc, N_ext * D);
  grow(ws.pre, N_ext * F);
  grow(ws.recon, N * D);
  float* xc = ws.xc.data();
  float* pre = ws.pre.data();
  if (N > 0) {
    const float* b_dec = p.b_dec();
    const float* b_enc = p.b_enc();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N_ext; ++n) {
      for (int64_t d = 0; d < D; ++d) xc[n * D + d] = x[n * D + d] - b_dec[d];
      std::copy(b_enc, b_enc + F, pre + n * F);  // the sgemm below adds onto b_enc
    }
    // pre[N,F] = xc[N,D] * W_encT[F,D]^T + b_enc, in blocks of encoder_block rows
    const int64_t G = cfg.encoder_block > 0 ? cfg.encoder_block : N_ext;
    for (int64_t r = 0; r < N_ext; r += G) {
      const int64_t m = std::min(G, N_ext - r);
      cpu::matmul(false, true, m, F, D, 1.0f, xc + r * D, D, p.W_encT(), D, 1.0f, pre + r * F, F);
    }
    if (lead > 0) {  // this call's rows to the front
      std::memmove(xc, xc + lead * D, sizeof(float) * size_t(N * D));
      std::memmove(pre, pre + lead * F, sizeof(float) * size_t(N * F));
    }
  }
  switch (cfg.architecture) {
    case Architecture::TopK:
      grow(ws.idx, N * cfg.k);
      grow(ws.val, N * cfg.k);
      ws.width = cfg.k;
      if (N > 0) select_topk(pre, N, F, cfg.k, ws.idx.data(), ws.val.data());
      break;
    case Architecture::BatchTopK: {
      // A collective when kth_largest spans ranks: every rank calls it, even with N = 0.
      const float t = batchtopk_threshold(pre, N, F, cfg.k, global_batch, cfg.kth_largest, ws.candidates);
      ws.batch_threshold = t;
      // pre >= t is pre > (the float just below t).
      ws.width = select_above(pre, N, F, nullptr, std::nextafter(t, -1.0f), ws.idx, ws.val);
      break;
    }
    case Architecture::ReLU:
      ws.width = select_above(pre, N, F, nullptr, 0.0f, ws.idx, ws.val);
      break;
    case Architecture::JumpReLU: {
      std::vector<float> theta(static_cast<size_t>(F));
      for (int64_t f = 0; f < F; ++f) theta[f] = std::exp(p.log_threshold()[f]);
      ws.width = select_above(pre, N, F, theta.data(), 0.0f, ws.idx, ws.val);
      break;
    }
  }
  if (N > 0) cpu::sparse_decode(ws.idx.data(), ws.val.data(), N, ws.width, p.W_dec(), p.b_dec(), D, ws.recon.data());
}

SaeStepSums sae_forward_backward(const SaeParams& p, const SaeConfig& cfg, const float* x,
                                 int64_t N, int64_t global_batch, const uint8_t* dead,
                                 double* grad, int64_t* fire_count, SaeWorkspace& ws,
                                 int64_t lead, int64_t tail) {
  SAE_ASSERT(global_batch >= N && global_batch > 0, "global batch must cover the local tokens");
  SaeStepSums sums;
  sums.n_tokens = N;
  sae_encode_decode(p, cfg, x, N, global_batch, ws, lead, tail);
  x += lead * p.d_in;  // this call's tokens
  if (N == 0) return sums;
  const int64_t D = p.d_in, F = p.d_sae, K = ws.width;  // K: selection width
  const double two_over_B = 2.0 / double(global_batch);
  double* g_W_encT = grad + p.off_W_encT();
  double* g_b_enc = grad + p.off_b_enc();
  double* g_W_dec = grad + p.off_W_dec();
  double* g_b_dec = grad + p.off_b_dec();
  grow(ws.g, N * D);
  grow(ws.dval, N * K);
  std::vector<double> row_sq(static_cast<size_t>(N));

  // ---- main reconstruction: g = dLoss/dx_hat = (2/B)(x_hat - x) ----
  {
    const float* recon = ws.recon.data();
    float* g = ws.g.data();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      double ss = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        const double e = double(recon[n * D + d]) - double(x[n * D + d]);
        ss += e * e;
        g[n * D + d] = float(two_over_B * e);
      }
      row_sq[n] = ss;
    }
    for (int64_t n = 0; n < N; ++n) sums.sum_sq_err += row_sq[n];
  }
  for (int64_t s = 0; s < N * K; ++s) {
    const int32_t f = ws.idx[s];
    if (f < 0) continue;
    sums.sum_active += 1.0;
    if (fire_count) ++fire_count[f];  // latents are distinct within a row: one per token
  }
  add_column_sums(ws.g.data(), N, D, 1.0, g_b_dec);  // x_hat = ... + b_dec
  cpu::sparse_decode_backward(ws.idx.data(), ws.val.data(), ws.g.data(), N, K, p.W_dec(), D, F,
                              ws.dval.data(), g_W_dec);
  // d pre = d z on active slots (every selection passes the gradient through); 0 elsewhere.
  for (int64_t s = 0; s < N * K; ++s)
    if (ws.idx[s] < 0) ws.dval[s] = 0.0f;
  if (cfg.architecture == Architecture::ReLU)
    sums.penalty = relu_l1_backward(p, ws.idx.data(), ws.val.data(), N, K, cfg.l1_coef, global_batch,
                                    ws.dval.data(), g_W_dec);
  if (cfg.architecture == Architecture::JumpReLU)
    sums.penalty = jumprelu_backward(p, ws.pre.data(), ws.g.data(), N, cfg.l0_coef, cfg.bandwidth, global_batch,
                                     ws.idx.data(), K, grad + p.off_log_threshold());

  // ---- AuxK: dead latents reconstruct the residual r = x - x_hat (a constant) ----
  int64_t A = 0;
  if (cfg.auxk > 0 && dead) {
    int64_t n_dead = 0;
    for (int64_t f = 0; f < F; ++f) n_dead += dead[f] != 0;
    A = std::min<int64_t>(cfg.auxk, n_dead);
  }
  if (A > 0) {
    grow(ws.aux_idx, N * A);
    grow(ws.aux_val, N * A);
    grow(ws.aux_recon, N * D);
    grow(ws.aux_g, N * D);
    grow(ws.aux_dval, N * A);
    cpu::topk_rows(ws.pre.data(), N, F, A, dead, ws.aux_idx.data(), ws.aux_val.data());
    for (int64_t s = 0; s < N * A; ++s)  // ReLU on the aux selection
      if (!(ws.aux_val[s] > 0.0f)) {
        ws.aux_idx[s] = -1;
        ws.aux_val[s] = 0.0f;
      }
    cpu::sparse_decode(ws.aux_idx.data(), ws.aux_val.data(), N, A, p.W_dec(), nullptr, D,
                       ws.aux_recon.data());
    const double coef = cfg.auxk_coef * two_over_B;
    const float* recon = ws.recon.data();
    const float* e_hat = ws.aux_recon.data();
    float* ga = ws.aux_g.data();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      double ss = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        const double r = double(x[n * D + d]) - double(recon[n * D + d]);
        const double e = double(e_hat[n * D + d]) - r;
        ss += e * e;
        ga[n * D + d] = float(coef * e);
      }
      row_sq[n] = ss;
    }
    for (int64_t n = 0; n < N; ++n) sums.aux_sq_err += row_sq[n];
    cpu::sparse_decode_backward(ws.aux_idx.data(), ws.aux_val.data(), ga, N, A, p.W_dec(), D,
                                F, ws.aux_dval.data(), g_W_dec);
    for (int64_t s = 0; s < N * A; ++s)
      if (ws.aux_idx[s] < 0) ws.aux_dval[s] = 0.0f;
  }

  // ---- encoder: pre = xc W_encT^T + b_enc, with xc = x - b_dec ----
  cpu::sparse_encode_backward(ws.idx.data(), ws.dval.data(), ws.xc.data(), N, K, D, F, g_W_encT,
                              g_b_enc);
  if (A > 0)
    cpu::sparse_encode_backward(ws.aux_idx.data(), ws.aux_dval.data(), ws.xc.data(), N, A, D, F,
                                g_W_encT, g_b_enc);
  // d loss / d b_dec through xc: -sum_n sum_j dpre[n,j] W_encT[idx[n,j]]
  //   = -sum_f s_f W_encT[f] with s_f the total dpre of latent f (F*D work instead of N*K*D).
  std::vector<double> s_f(static_cast<size_t>(F), 0.0);
  for (int64_t s = 0; s < N * K; ++s)
    if (ws.idx[s] >= 0) s_f[ws.idx[s]] += ws.dval[s];
  for (int64_t s = 0; s < N * A; ++s)
    if (ws.aux_idx[s] >= 0) s_f[ws.aux_idx[s]] += ws.aux_dval[s];
  {
    constexpr int64_t kCols = 64;
    const int64_t blocks = (D + kCols - 1) / kCols;
    const float* W_encT = p.W_encT();
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t d0 = b * kCols, d1 = std::min(D, d0 + kCols);
      double acc[kCols] = {};
      for (int64_t f = 0; f < F; ++f) {
        const double sf = s_f[f];
        if (sf == 0.0) continue;
        for (int64_t d = d0; d < d1; ++d) acc[d - d0] += sf * double(W_encT[f * D + d]);
      }
      for (int64_t d = d0; d < d1; ++d) g_b_dec[d] -= acc[d - d0];
    }
  }
  return sums;
}

double sae_loss_reference(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                          int64_t global_batch, const uint8_t* dead) {
  check_config(p, cfg);
  const int64_t D = p.d_in, F = p.d_sae, K = cfg.k;
  const size_t Ds = static_cast<size_t>(D);
  std::vector<double> pre(static_cast<size_t>(N * F)), xc(Ds), x_hat(Ds), e_hat(Ds);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t d = 0; d < D; ++d) xc[d] = double(x[n * D + d]) - double(p.b_dec()[d]);
    for (int64_t f = 0; f < F; ++f) {
      double s = double(p.b_enc()[f]);
      for (int64_t d = 0; d < D; ++d) s += double(p.W_encT()[f * D + d]) * xc[d];
      pre[n * F + f] = s;
    }
  }
  // batchtopk: the (B*k)-th largest positive pre-activation of all tokens.
  double batch_thr = 0.0;
  if (cfg.architecture == Architecture::BatchTopK) {
    std::vector<double> pos;
    for (double v : pre)
      if (v > 0.0) pos.push_back(v);
    std::sort(pos.begin(), pos.end(), std::greater<>());
    const int64_t kth = global_batch * K;
    batch_thr = int64_t(pos.size()) >= kth ? pos[size_t(kth - 1)] : 0.0;
  }
  std::vector<double> norm(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) {
    double ss = 0.0;
    for (int64_t d = 0; d < D; ++d) ss += double(p.W_dec()[f * D + d]) * double(p.W_dec()[f * D + d]);
    norm[f] = std::sqrt(ss);
  }
  std::vector<int64_t> order;
  double sq = 0.0, aux = 0.0, penalty = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x + n * D;
    const double* pr = pre.data() + n * F;
    // Descending pre-activation, ties to the lower index.
    auto by_pre = [&](int64_t a, int64_t b) { return pr[a] > pr[b] || (pr[a] == pr[b] && a < b); };
    std::vector<double> z(static_cast<size_t>(F), 0.0);
    switch (cfg.architecture) {
      case Architecture::TopK:
        order.resize(size_t(F));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), by_pre);
        for (int64_t j = 0; j < K; ++j) z[order[j]] = std::max(pr[order[j]], 0.0);
        break;
      case Architecture::BatchTopK:
        for (int64_t f = 0; f < F; ++f) z[f] = pr[f] > 0.0 && pr[f] >= batch_thr ? pr[f] : 0.0;
        break;
      case Architecture::ReLU:
        for (int64_t f = 0; f < F; ++f) z[f] = std::max(pr[f], 0.0);
        for (int64_t f = 0; f < F; ++f) penalty += cfg.l1_coef * z[f] * norm[f];
        break;
      case Architecture::JumpReLU:
        for (int64_t f = 0; f < F; ++f) z[f] = pr[f] > std::exp(double(p.log_threshold()[f])) && pr[f] > 0 ? pr[f] : 0.0;
        for (int64_t f = 0; f < F; ++f) penalty += cfg.l0_coef * double(z[f] > 0.0);
        break;
    }
    for (int64_t d = 0; d < D; ++d) x_hat[d] = double(p.b_dec()[d]);
    for (int64_t f = 0; f < F; ++f)
      if (z[f] != 0.0)
        for (int64_t d = 0; d < D; ++d) x_hat[d] += z[f] * double(p.W_dec()[f * D + d]);
    for (int64_t d = 0; d < D; ++d) {
      const double e = x_hat[d] - double(xn[d]);
      sq += e * e;
    }
    if (cfg.auxk > 0 && dead) {
      order.clear();
      for (int64_t f = 0; f < F; ++f)
        if (dead[f]) order.push_back(f);
      if (order.empty()) continue;
      std::sort(order.begin(), order.end(), by_pre);
      const int64_t A = std::min<int64_t>(cfg.auxk, int64_t(order.size()));
      std::fill(e_hat.begin(), e_hat.end(), 0.0);
      for (int64_t j = 0; j < A; ++j) {
        const int64_t f = order[j];
        const double za = std::max(pr[f], 0.0);
        for (int64_t d = 0; d < D; ++d) e_hat[d] += za * double(p.W_dec()[f * D + d]);
      }
      for (int64_t d = 0; d < D; ++d) {
        const double r = double(xn[d]) - x_hat[d];
        const double e = e_hat[d] - r;
        aux += e * e;
      }
    }
  }
  return (sq + penalty) / double(global_batch) + cfg.auxk_coef * aux / double(global_batch);
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
  if (unit_norm_decoder) cpu::project_out_parallel(p.W_dec(), grad.data() + p.off_W_dec(), p.d_sae, p.d_in);
  cpu::adam_step(p.data.data(), grad.data(), state.m.data(), state.v.data(), n, cfg.lr,
                 cfg.beta1, cfg.beta2, cfg.eps, state.t);
  if (unit_norm_decoder) cpu::normalize_rows(p.W_dec(), p.d_sae, p.d_in);
}

Architecture parse_architecture(const std::string& name) {
  if (name == "topk") return Architecture::TopK;
  if (name == "batchtopk") return Architecture::BatchTopK;
  if (name == "relu") return Architecture::ReLU;
  if (name == "jumprelu") return Architecture::JumpReLU;
  user_error("architecture '" + name + "' is not one of topk, batchtopk, relu, jumprelu");
}

std::string to_string(Architecture a) {
  switch (a) {
    case Architecture::TopK: return "topk";
    case Architecture::BatchTopK: return "batchtopk";
    case Architecture::ReLU: return "relu";
    case Architecture::JumpReLU: return "jumprelu";
  }
  return "?";
}

}  // namespace saepipe
