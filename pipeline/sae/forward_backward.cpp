// The shared SAE forward/backward for every architecture and dictionary kind (sae.hpp); the
// architecture-specific selection and penalties are in arch_*.cpp.
//
// Shape legend: N tokens, D d_in, O d_out, F d_sae, W selection width, G gate width (gated),
// A auxk (effective: min(auxk, #dead)), J matryoshka prefixes.
//   x, xc [N,D]; y, recon, g, skip_out [N,O]; pre [N,F]; idx, val, dval [N,W]; aux_* [N,A].
//
// Convention: a slot whose z is 0 is not active, so it is stored as idx = -1, val = 0 (the
// same "empty slot" the kernels skip).
// Every gradient sum runs in an order fixed by token and latent indices, never by thread.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/sae_internal.hpp"

namespace saepipe {

using sae_detail::add_column_sums;
using sae_detail::grow;

namespace {

// out[n, :] = a[n, :] W^T for n < M, W [R, C] (a [M, C], out [M, R], rows ld_out apart; 0: R)
// in blocks of `block` rows counted from the first (0: one call), like the encoder:
// rank-invariant rounding.
// When BLAS is single-threaded (the train stage holds a SingleThreadedBlas) the blocks go over
// the OpenMP threads, each the same call as on one thread, so the rounding does not depend on
// the thread count (OpenBLAS's result for an element depends on the columns of the call, so
// neither its own threads nor column slabs keep it), and BLAS's own threads no longer spin
// (sched_yield) beside OpenMP's between the step's calls.
void blocked_matmul_nt(const float* a, int64_t M, int64_t C, const float* W, int64_t R, int64_t block, float beta,
                       float* out, int64_t ld_out = 0) {
  const int64_t G = block > 0 ? block : M;
  const int64_t ld = ld_out > 0 ? ld_out : R;
  const int threads = omp_get_max_threads();
  if (threads <= 1 || openblas_get_num_threads() > 1 || M == 0) {
    for (int64_t r = 0; r < M; r += G) {
      const int64_t m = std::min(G, M - r);
      cpu::matmul(false, true, m, R, C, 1.0f, a + r * C, C, W, C, beta, out + r * ld, ld);
    }
    return;
  }
  const int64_t blocks = (M + G - 1) / G;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r = b * G, m = std::min(G, M - r);
    cpu::matmul(false, true, m, R, C, 1.0f, a + r * C, C, W, C, beta, out + r * ld, ld);
  }
}

// grad[o, d] += sum_n g[n, o] x[n, d] in float64, increasing n per element (deterministic);
// threads split the rows o.
void add_outer_products(const float* g, const float* x, int64_t N, int64_t O, int64_t D, double* grad) {
#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(D));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < O; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const double gv = g[n * O + o];
        if (gv == 0.0) continue;
        const float* xn = x + n * D;
        for (int64_t d = 0; d < D; ++d) acc[d] += gv * double(xn[d]);
      }
      double* out = grad + o * D;
      for (int64_t d = 0; d < D; ++d) out[d] += acc[d];
    }
  }
}

// s_f += dpre summed per latent over the non-empty slots (for the b_dec gradient through xc).
void add_latent_sums(const int32_t* idx, const float* dpre, int64_t slots, std::vector<double>& s_f) {
  for (int64_t s = 0; s < slots; ++s)
    if (idx[s] >= 0) s_f[idx[s]] += dpre[s];
}

// Per row the best K of the allowed latents over every shard of the group (the same ones
// topk_rows picks from the whole row), this shard's among them in idx/val [N,K]: this shard
// offers its best min(K, F) with global indices, and the group merges them.
void shard_top_rows(const float* pre, int64_t N, int64_t F, int64_t K, const uint8_t* allowed, const LatentShard& sh,
                    SaeWorkspace& ws, int32_t* idx, float* val) {
  const int64_t W = std::min(K, F);
  grow(ws.shard_idx, N * W);
  grow(ws.shard_val, N * W);
  int32_t* ci = ws.shard_idx.data();
  if (N > 0) cpu::topk_rows(pre, N, F, W, allowed, ci, ws.shard_val.data());
  for (int64_t s = 0; s < N * W; ++s)
    if (ci[s] >= 0) ci[s] += int32_t(sh.first);
  sh.merge_top(ci, ws.shard_val.data(), N, W, K, idx, val);
}

// out [N,O] = b_dec (nullable) + the selected decoder rows, summed in float64 and rounded once:
// a sharded reconstruction (each shard's partial sum, added over the group) then rounds as the
// unsharded one does, and the grid does not change the weights beyond float64 rounding.
void decode_rows(const SaeParams& p, const int32_t* idx, const float* val, int64_t N, int64_t W, const float* b_dec,
                 const LatentShard* shard, std::vector<double>& acc, float* out) {
  const int64_t D = p.d_out;
  if (!shard) {  // the same sums and rounding, each row in cache
    cpu::sparse_decode_f64_rounded(idx, val, N, W, p.W_dec(), b_dec, D, out);
    return;
  }
  grow(acc, N * D);
  if (N > 0) cpu::sparse_decode_f64(idx, val, N, W, p.W_dec(), D, acc.data());
  if (shard) shard->sum_rows(acc.data(), N, D);  // a collective: also with no rows
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) out[n * D + d] = float(acc[n * D + d] + (b_dec ? double(b_dec[d]) : 0.0));
}

// ReLU on a selection: a non-positive slot is not active (the kernels skip idx = -1).
void empty_nonpositive(int32_t* idx, float* val, int64_t n) {
  for (int64_t s = 0; s < n; ++s)
    if (!(val[s] > 0.0f)) {
      idx[s] = -1;
      val[s] = 0.0f;
    }
}

}  // namespace

void sae_encode_decode(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                       int64_t global_batch, SaeWorkspace& ws, int64_t lead, int64_t tail) {
  sae_detail::check_config(p, cfg);
  SAE_ASSERT(N >= 0 && lead >= 0 && tail >= 0, "negative token count");
  const int64_t D = p.d_in, O = p.d_out, F = p.d_sae, N_ext = lead + N + tail;
  grow(ws.xc, N_ext * D);
  grow(ws.pre, N_ext * F);
  grow(ws.recon, N * O);
  float* xc = ws.xc.data();
  float* pre = ws.pre.data();
  if (N > 0) {
    const float* b_dec = p.b_dec();
    const float* b_enc = p.b_enc();
    const bool center = !p.transcoder;  // a transcoder's b_dec is in the output's space
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N_ext; ++n) {
      for (int64_t d = 0; d < D; ++d) xc[n * D + d] = center ? x[n * D + d] - b_dec[d] : x[n * D + d];
      std::copy(b_enc, b_enc + F, pre + n * F);  // the sgemm below adds onto b_enc
    }
    // pre[N,F] = xc[N,D] * W_encT[F,D]^T + b_enc, in blocks of encoder_block rows x
    // encoder_cols latents (pre's rows are F apart: the column blocks write into them)
    const int64_t C = cfg.encoder_cols > 0 ? cfg.encoder_cols : F;
    for (int64_t c = 0; c < F; c += C)
      blocked_matmul_nt(xc, N_ext, D, p.W_encT() + c * D, std::min(C, F - c), cfg.encoder_block, 1.0f, pre + c, F);
    if (p.skip) {  // x W_skip^T over the same blocks, so its rounding is rank-invariant too
      grow(ws.skip_out, N_ext * O);
      blocked_matmul_nt(x, N_ext, D, p.W_skip(), O, cfg.encoder_block, 0.0f, ws.skip_out.data());
      if (lead > 0) std::memmove(ws.skip_out.data(), ws.skip_out.data() + lead * O, sizeof(float) * size_t(N * O));
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
      if (cfg.shard) {  // a collective: every shard calls it, also with no rows
        shard_top_rows(pre, N, F, cfg.k, nullptr, *cfg.shard, ws, ws.idx.data(), ws.val.data());
        empty_nonpositive(ws.idx.data(), ws.val.data(), N * cfg.k);
      } else if (N > 0) {
        select_topk(pre, N, F, cfg.k, ws.idx.data(), ws.val.data());
      }
      break;
    case Architecture::BatchTopK:
    case Architecture::Matryoshka: {
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
    case Architecture::Gated:
      ws.width = gated_select(p, pre, N, ws);
      break;
  }
  // Sharded: each shard decodes its latents and the group sums them (a collective).
  decode_rows(p, ws.idx.data(), ws.val.data(), N, ws.width, p.b_dec(), cfg.shard, ws.recon64, ws.recon.data());
  if (N > 0) {
    if (p.skip)
      for (int64_t i = 0; i < N * O; ++i) ws.recon[i] += ws.skip_out[i];
  }
}

SaeStepSums sae_forward_backward(const SaeParams& p, const SaeConfig& cfg, const float* x,
                                 int64_t N, int64_t global_batch, const uint8_t* dead,
                                 double* grad, int64_t* fire_count, SaeWorkspace& ws,
                                 int64_t lead, int64_t tail, const float* target) {
  SAE_ASSERT(global_batch >= N && global_batch > 0, "global batch must cover the local tokens");
  SAE_ASSERT(target || p.d_out == p.d_in, "a dictionary that writes another width needs a target");
  SaeStepSums sums;
  sums.n_tokens = N;
  sae_encode_decode(p, cfg, x, N, global_batch, ws, lead, tail);
  x += lead * p.d_in;  // this call's tokens
  const float* y = target ? target : x;
  if (N == 0) return sums;  // sharded: the shards of a group hold the same rows, so all return
  const LatentShard* shard = cfg.shard;
  // Sharded, the reconstruction (and so g) is the group's: one shard adds what depends on it only.
  const bool lead_shard = !shard || shard->lead;
  const Architecture arch = cfg.architecture;
  const int64_t D = p.d_in, O = p.d_out, F = p.d_sae, K = ws.width;  // K: selection width
  const double two_over_B = 2.0 / double(global_batch);
  double* g_W_encT = grad + p.off_W_encT();
  double* g_b_enc = grad + p.off_b_enc();
  double* g_W_dec = grad + p.off_W_dec();
  double* g_b_dec = grad + p.off_b_dec();
  grow(ws.g, N * O);
  grow(ws.dval, N * K);
  std::vector<double> row_sq(static_cast<size_t>(N));

  // ---- main reconstruction: g = dLoss/dx_hat = (2/B)(x_hat - y) ----
  {
    const float* recon = ws.recon.data();
    float* g = ws.g.data();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) row_sq[n] = sae_detail::row_scaled_error(recon + n * O, y + n * O, O, two_over_B, g + n * O);
    if (lead_shard)
      for (int64_t n = 0; n < N; ++n) sums.sum_sq_err += row_sq[n];
  }
  for (int64_t s = 0; s < N * K; ++s) {
    const int32_t f = ws.idx[s];
    if (f < 0) continue;
    sums.sum_active += 1.0;
    if (fire_count) ++fire_count[f];  // latents are distinct within a row: one per token
  }
  // `g_out` is dLoss/dx_hat for what every reconstruction shares (b_dec, the skip): g, or for
  // matryoshka the sum over the prefixes.
  const float* g_out = ws.g.data();
  if (arch == Architecture::Matryoshka) {
    const MatryoshkaSums m = matryoshka_backward(p, cfg.prefixes, ws.idx.data(), ws.val.data(), N, K,
                                                 p.skip ? ws.skip_out.data() : nullptr, y, global_batch, ws,
                                                 ws.dval.data(), g_W_dec, shard);
    if (lead_shard) sums.penalty += m.prefix_sq;
    g_out = ws.prefix_g.data();  // group 1's suffix sum: every prefix's gradient
  } else {
    cpu::sparse_decode_backward(ws.idx.data(), ws.val.data(), ws.g.data(), N, K, p.W_dec(), O, F,
                                ws.dval.data(), g_W_dec);
  }
  if (lead_shard) add_column_sums(g_out, N, O, 1.0, g_b_dec);  // x_hat = ... + b_dec
  if (p.skip && lead_shard) add_outer_products(g_out, x, N, O, D, grad + p.off_W_skip());  // shared, as b_dec
  // d pre = d z on active slots (every selection passes the gradient through); 0 elsewhere.
  for (int64_t s = 0; s < N * K; ++s)
    if (ws.idx[s] < 0) ws.dval[s] = 0.0f;
  if (arch == Architecture::ReLU)
    sums.penalty = relu_l1_backward(p, ws.idx.data(), ws.val.data(), N, K, cfg.l1_coef, global_batch,
                                    ws.dval.data(), g_W_dec);
  if (arch == Architecture::JumpReLU)
    sums.penalty = jumprelu_backward(p, ws.pre.data(), ws.g.data(), N, cfg.l0_coef, cfg.bandwidth, global_batch,
                                     ws.idx.data(), K, grad + p.off_log_threshold());
  if (arch == Architecture::Gated)  // dval becomes the magnitude path's d pre; the gate path's in ws.gate_dval
    sums.penalty = gated_backward(p, ws.pre.data(), y, p.skip ? ws.skip_out.data() : nullptr, N, global_batch,
                                  cfg.l1_coef, ws, grad, shard);

  // ---- AuxK: dead latents reconstruct the residual r = y - x_hat (a constant) ----
  // Sharded, `dead` spans every shard's latents: A is the same on each shard of the group.
  int64_t A = 0;
  const uint8_t* dead_here = dead && shard ? dead + shard->first : dead;
  if (cfg.auxk > 0 && dead) {
    int64_t n_dead = 0;
    for (int64_t f = 0; f < (shard ? shard->total : F); ++f) n_dead += dead[f] != 0;
    A = std::min<int64_t>(cfg.auxk, n_dead);
  }
  if (A > 0) {
    grow(ws.aux_idx, N * A);
    grow(ws.aux_val, N * A);
    grow(ws.aux_recon, N * O);
    grow(ws.aux_g, N * O);
    grow(ws.aux_dval, N * A);
    if (shard)
      shard_top_rows(ws.pre.data(), N, F, A, dead_here, *shard, ws, ws.aux_idx.data(), ws.aux_val.data());
    else
      cpu::topk_rows(ws.pre.data(), N, F, A, dead, ws.aux_idx.data(), ws.aux_val.data());
    empty_nonpositive(ws.aux_idx.data(), ws.aux_val.data(), N * A);  // ReLU on the aux selection
    decode_rows(p, ws.aux_idx.data(), ws.aux_val.data(), N, A, nullptr, shard, ws.recon64, ws.aux_recon.data());
    const double coef = cfg.auxk_coef * two_over_B;
    const float* recon = ws.recon.data();
    const float* e_hat = ws.aux_recon.data();
    float* ga = ws.aux_g.data();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      double ss = 0.0;
      for (int64_t d = 0; d < O; ++d) {
        const double r = double(y[n * O + d]) - double(recon[n * O + d]);
        const double e = double(e_hat[n * O + d]) - r;
        ss += e * e;
        ga[n * O + d] = float(coef * e);
      }
      row_sq[n] = ss;
    }
    if (lead_shard)
      for (int64_t n = 0; n < N; ++n) sums.aux_sq_err += row_sq[n];
    cpu::sparse_decode_backward(ws.aux_idx.data(), ws.aux_val.data(), ga, N, A, p.W_dec(), O, F,
                                ws.aux_dval.data(), g_W_dec);
    for (int64_t s = 0; s < N * A; ++s)
      if (ws.aux_idx[s] < 0) ws.aux_dval[s] = 0.0f;
  }

  // ---- encoder: pre = xc W_encT^T + b_enc, with xc = x - b_dec (x for a transcoder) ----
  // Gated: the magnitude path m = exp(r) (pre - b_enc) + b_mag does not reach b_enc (= b_gate).
  std::vector<double> no_bias;
  double* g_b_enc_main = g_b_enc;
  if (arch == Architecture::Gated) {
    no_bias.assign(size_t(F), 0.0);
    g_b_enc_main = no_bias.data();
  }
  cpu::sparse_encode_backward(ws.idx.data(), ws.dval.data(), ws.xc.data(), N, K, D, F, g_W_encT, g_b_enc_main);
  if (arch == Architecture::Gated)
    cpu::sparse_encode_backward(ws.gate_idx.data(), ws.gate_dval.data(), ws.xc.data(), N, ws.gate_width, D, F,
                                g_W_encT, g_b_enc);
  if (A > 0)
    cpu::sparse_encode_backward(ws.aux_idx.data(), ws.aux_dval.data(), ws.xc.data(), N, A, D, F,
                                g_W_encT, g_b_enc);
  if (p.transcoder) return sums;  // its encoder input does not depend on b_dec
  // d loss / d b_dec through xc: -sum_n sum_j dpre[n,j] W_encT[idx[n,j]]
  //   = -sum_f s_f W_encT[f] with s_f the total dpre of latent f (F*D work instead of N*K*D).
  std::vector<double> s_f(static_cast<size_t>(F), 0.0);
  add_latent_sums(ws.idx.data(), ws.dval.data(), N * K, s_f);
  if (arch == Architecture::Gated) add_latent_sums(ws.gate_idx.data(), ws.gate_dval.data(), N * ws.gate_width, s_f);
  if (A > 0) add_latent_sums(ws.aux_idx.data(), ws.aux_dval.data(), N * A, s_f);
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

}  // namespace saepipe
