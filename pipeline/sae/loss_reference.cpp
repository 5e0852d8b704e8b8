// The plain float64 reference of the training loss (sae.hpp, sae_loss_reference): dense loops
// over every token and latent, written from the definitions in sae.hpp rather than from the
// sparse forward/backward, for finite-difference tests of its gradients.
//
// Shape legend: N tokens, D d_in, O d_out, F d_sae, K k, J matryoshka prefixes, L layers.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

#include "pipeline/sae/architectures.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/sae_internal.hpp"

namespace saepipe {

namespace {

// Everything the loss needs from one parameter set, in float64: pre [N,F], and per token the
// reconstruction from a code z: b_dec + W_dec^T z + W_skip x.
struct Dense {
  const SaeParams& p;
  const float* x;
  int64_t N, D, O, F;
  std::vector<double> pre;

  Dense(const SaeParams& p_, const float* x_, int64_t N_) : p(p_), x(x_), N(N_), D(p_.d_in), O(p_.d_out), F(p_.d_sae) {
    pre.resize(size_t(N * F));
    std::vector<double> xc(static_cast<size_t>(D));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t d = 0; d < D; ++d) xc[d] = double(x[n * D + d]) - (p.transcoder ? 0.0 : double(p.b_dec()[d]));
      for (int64_t f = 0; f < F; ++f) {
        double s = double(p.b_enc()[f]);
        for (int64_t d = 0; d < D; ++d) s += double(p.W_encT()[f * D + d]) * xc[d];
        pre[n * F + f] = s;
      }
    }
  }
  // b_dec + sum_f z_f W_dec,f (f < limit) + W_skip x_n
  std::vector<double> decode(int64_t n, const std::vector<double>& z, int64_t limit) const {
    std::vector<double> out(static_cast<size_t>(O));
    for (int64_t o = 0; o < O; ++o) out[o] = double(p.b_dec()[o]);
    for (int64_t f = 0; f < limit; ++f)
      if (z[f] != 0.0)
        for (int64_t o = 0; o < O; ++o) out[o] += z[f] * double(p.W_dec()[f * O + o]);
    if (p.skip)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t d = 0; d < D; ++d) out[o] += double(p.W_skip()[o * D + d]) * double(x[n * D + d]);
    return out;
  }
};

double sq_error(const std::vector<double>& a, const float* y) {
  double s = 0;
  for (size_t o = 0; o < a.size(); ++o) s += (a[o] - double(y[o])) * (a[o] - double(y[o]));
  return s;
}

// z of token n from its pre-activations, by the architecture's rule (batchtopk and matryoshka
// above `batch_thr`).
std::vector<double> code(const SaeParams& p, const SaeConfig& cfg, const double* pr, double batch_thr) {
  const int64_t F = p.d_sae;
  std::vector<double> z(size_t(F), 0.0);
  switch (cfg.architecture) {
    case Architecture::TopK: {
      std::vector<int64_t> order(static_cast<size_t>(F));
      std::iota(order.begin(), order.end(), 0);
      // Descending pre-activation, ties to the lower index.
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return pr[a] > pr[b] || (pr[a] == pr[b] && a < b); });
      for (int64_t j = 0; j < cfg.k; ++j) z[order[j]] = std::max(pr[order[j]], 0.0);
      break;
    }
    case Architecture::BatchTopK:
    case Architecture::Matryoshka:
      for (int64_t f = 0; f < F; ++f) z[f] = pr[f] > 0.0 && pr[f] >= batch_thr ? pr[f] : 0.0;
      break;
    case Architecture::ReLU:
      for (int64_t f = 0; f < F; ++f) z[f] = std::max(pr[f], 0.0);
      break;
    case Architecture::JumpReLU:
      for (int64_t f = 0; f < F; ++f) z[f] = pr[f] > std::exp(double(p.log_threshold()[f])) && pr[f] > 0 ? pr[f] : 0.0;
      break;
    case Architecture::Gated:
      for (int64_t f = 0; f < F; ++f) {
        if (!(pr[f] > 0.0)) continue;
        const double m = std::exp(double(p.r_mag()[f])) * (pr[f] - double(p.b_enc()[f])) + double(p.b_mag()[f]);
        z[f] = std::max(m, 0.0);
      }
      break;
  }
  return z;
}

}  // namespace

double sae_loss_reference(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                          int64_t global_batch, const uint8_t* dead, const float* target, const SaeParams* frozen) {
  sae_detail::check_config(p, cfg);
  const SaeParams& fz = frozen ? *frozen : p;
  const Dense dense(p, x, N);
  const Dense dense_frozen(fz, x, N);
  const int64_t D = p.d_in, O = p.d_out, F = p.d_sae, L = p.layers, w = O / L;
  const float* y = target ? target : x;
  // batchtopk / matryoshka: the (B*k)-th largest positive pre-activation of all tokens.
  // The frozen parameters (AuxK's residual) select with their own threshold.
  auto threshold_of = [&](const Dense& d) {
    if (!batch_selection(cfg.architecture)) return 0.0;
    std::vector<double> pos;
    for (double v : d.pre)
      if (v > 0.0) pos.push_back(v);
    std::sort(pos.begin(), pos.end(), std::greater<>());
    const int64_t kth = global_batch * cfg.k;
    return int64_t(pos.size()) >= kth ? pos[size_t(kth - 1)] : 0.0;
  };
  const double batch_thr = threshold_of(dense), batch_thr_frozen = threshold_of(dense_frozen);
  // relu's L1 weight per latent: the norm of its decoder row, or the sum of its blocks' norms.
  std::vector<double> norm(static_cast<size_t>(F), 0.0);
  for (int64_t f = 0; f < F; ++f)
    for (int64_t l = 0; l < L; ++l) {
      double ss = 0.0;
      for (int64_t o = l * w; o < (l + 1) * w; ++o) ss += double(p.W_dec()[f * O + o]) * double(p.W_dec()[f * O + o]);
      norm[f] += std::sqrt(ss);
    }
  const std::vector<int64_t> groups = matryoshka_groups(cfg.prefixes, F);
  double sq = 0.0, aux = 0.0, penalty = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const double* pr = dense.pre.data() + n * F;
    const float* yn = y + n * O;
    const std::vector<double> z = code(p, cfg, pr, batch_thr);
    sq += sq_error(dense.decode(n, z, F), yn);
    switch (cfg.architecture) {
      case Architecture::ReLU:
        for (int64_t f = 0; f < F; ++f) penalty += cfg.l1_coef * z[f] * norm[f];
        break;
      case Architecture::JumpReLU:
        for (int64_t f = 0; f < F; ++f) penalty += cfg.l0_coef * double(z[f] > 0.0);
        break;
      case Architecture::Matryoshka:
        for (size_t j = 0; j + 1 < groups.size(); ++j) penalty += sq_error(dense.decode(n, z, groups[j]), yn);
        break;
      case Architecture::Gated: {
        // L1 of ReLU(pi_gate), and x_hat_gate through the frozen decoder (the encoder's own pre).
        std::vector<double> gate(static_cast<size_t>(F));
        for (int64_t f = 0; f < F; ++f) gate[f] = std::max(pr[f], 0.0);
        for (int64_t f = 0; f < F; ++f) penalty += cfg.l1_coef * gate[f];
        penalty += sq_error(dense_frozen.decode(n, gate, F), yn);
        break;
      }
      default:
        break;
    }
    if (cfg.auxk > 0 && dead) {
      // The residual r = y - x_hat of the frozen parameters (a constant of the step).
      const std::vector<double> zf = code(fz, cfg, dense_frozen.pre.data() + n * F, batch_thr_frozen);
      const std::vector<double> xf = dense_frozen.decode(n, zf, F);
      std::vector<int64_t> order;
      for (int64_t f = 0; f < F; ++f)
        if (dead[f]) order.push_back(f);
      if (order.empty()) continue;
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return pr[a] > pr[b] || (pr[a] == pr[b] && a < b); });
      const int64_t A = std::min<int64_t>(cfg.auxk, int64_t(order.size()));
      std::vector<double> e_hat(size_t(O), 0.0);
      for (int64_t j = 0; j < A; ++j) {
        const int64_t f = order[j];
        const double za = std::max(pr[f], 0.0);
        for (int64_t o = 0; o < O; ++o) e_hat[o] += za * double(p.W_dec()[f * O + o]);
      }
      for (int64_t o = 0; o < O; ++o) {
        const double e = e_hat[o] - (double(yn[o]) - xf[o]);
        aux += e * e;
      }
    }
  }
  (void)D;
  return (sq + penalty) / double(global_batch) + cfg.auxk_coef * aux / double(global_batch);
}

}  // namespace saepipe
