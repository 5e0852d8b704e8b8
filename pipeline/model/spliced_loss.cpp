// Shape legend: B sequences, T positions, N = B*T rows (each gives a KL), P = B*(T-1) of them with
// a next token (each gives a CE), R rows per block, D d_model, V vocab.
#include "pipeline/model/spliced_loss.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/fast_math.hpp"
#include "pipeline/model/unembed.hpp"

namespace saepipe {

namespace {

// Predictions per block: logits [3, R, V] at a time (38.6 MB for GPT-2's vocabulary).
constexpr int64_t kRows = 64;

struct RowResult {
  double ce[3];     // clean, spliced, zero
  double kl[2];     // KL(clean || spliced), KL(clean || zero)
};

// Per row: cross-entropy of each variant at `target` (none when target < 0) and KL(clean || other), from the
// three rows of logits. e, e2 [V] are scratch. Sums in double; exp is fast_exp (vectorised),
// the reductions in SIMD lanes. Every variant goes through the same loops, so an identity edit
// (bit-identical logits) gives exactly the clean loss and a KL of exactly 0.
RowResult row_losses(const float* const lg[3], int64_t V, int32_t target, float* e, float* e2) {
  double lse[3], sum_c = 0;
  for (int k = 0; k < 3; ++k) {
    const float* l = lg[k];
    float* ek = k == 0 ? e : e2;  // e keeps the clean row's exp(l - max) for the KL
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, l[v]);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) {
      ek[v] = fast_exp(l[v] - mx);
      s += double(ek[v]);
    }
    if (k == 0) sum_c = s;
    lse[k] = double(mx) + std::log(s);
  }
  RowResult r;
  for (int k = 0; k < 3; ++k) r.ce[k] = target >= 0 ? lse[k] - double(lg[k][target]) : 0.0;
  // With a, b the logits of p (clean) and q: KL(p || q) = sum_v p_v (a_v - b_v) + lse_q - lse_p,
  // p_v = e_v / sum_c.
  for (int k = 1; k < 3; ++k) {
    const float *lp = lg[0], *lq = lg[k];
    double d = 0;
#pragma omp simd reduction(+ : d)
    for (int64_t v = 0; v < V; ++v) d += double(e[v]) * (double(lp[v]) - double(lq[v]));
    r.kl[k - 1] = d / sum_c + (lse[k] - lse[0]);
  }
  return r;
}

}  // namespace

SplicedLossSums& SplicedLossSums::operator+=(const SplicedLossSums& o) {
  clean_loss += o.clean_loss, spliced_loss += o.spliced_loss, zero_loss += o.zero_loss;
  kl_spliced += o.kl_spliced, kl_zero += o.kl_zero, n_predictions += o.n_predictions, n_positions += o.n_positions;
  return *this;
}

double SplicedLossSums::ce_loss_score() const {
  const double den = zero_loss - clean_loss;
  return den == 0 ? std::numeric_limits<double>::quiet_NaN() : (zero_loss - spliced_loss) / den;
}

double SplicedLossSums::kl_div_score() const {
  return kl_zero == 0 ? std::numeric_limits<double>::quiet_NaN() : (kl_zero - kl_spliced) / kl_zero;
}

SplicedLossSums spliced_loss(const TransformerModel& m, const int32_t* tokens, int64_t B, int64_t T,
                             const HookPoint& hook, const ActivationEdit& reconstruct) {
  SAE_ASSERT(m.is_full(), "spliced_loss needs the full model (load_transformer_full)");
  SAE_ASSERT(B >= 0 && T >= 1, "bad batch shape");
  SplicedLossSums sums;
  if (B == 0 || T < 2) return sums;
  const int64_t D = m.d_model(), V = m.vocab_size(), N = B * T, ND = N * D, P = B * (T - 1);

  // final [3, N, D]: clean, spliced, zero.
  std::vector<float> final(size_t(3 * ND));
  const ActivationEdit zero = [D](float* a, int64_t rows) { std::fill(a, a + rows * D, 0.0f); };
  m.forward_final(tokens, B, T, hook, {ActivationEdit(), reconstruct, zero},
                  {final.data(), final.data() + ND, final.data() + 2 * ND});

  std::vector<float> x(size_t(3 * kRows * D)), logits(size_t(3 * kRows * V));  // [3,R,D], [3,R,V]
  std::vector<RowResult> res(static_cast<size_t>(kRows));
  std::vector<int32_t> target(static_cast<size_t>(kRows));
  for (int64_t n0 = 0; n0 < N; n0 += kRows) {
    const int64_t R = std::min(kRows, N - n0);
    for (int64_t i = 0; i < R; ++i) {
      const int64_t n = n0 + i;
      target[size_t(i)] = n % T == T - 1 ? -1 : tokens[n + 1];  // a sequence's last row: KL only
      for (int k = 0; k < 3; ++k)
        std::memcpy(x.data() + (k * kRows + i) * D, final.data() + k * ND + n * D, size_t(D) * sizeof(float));
    }
    // One call per variant with the same shape: identical rows give identical logits.
    for (int k = 0; k < 3; ++k) unembed(m, x.data() + k * kRows * D, R, logits.data() + k * kRows * V);
#pragma omp parallel
    {
      std::vector<float> e(static_cast<size_t>(V)), e2(e.size());
#pragma omp for schedule(static)
      for (int64_t i = 0; i < R; ++i) {
        const float* lg[3] = {logits.data() + i * V, logits.data() + (kRows + i) * V,
                              logits.data() + (2 * kRows + i) * V};
        res[size_t(i)] = row_losses(lg, V, target[size_t(i)], e.data(), e2.data());
      }
    }
    for (int64_t i = 0; i < R; ++i) {  // in row order: independent of the thread count
      const RowResult& r = res[size_t(i)];
      sums.clean_loss += r.ce[0], sums.spliced_loss += r.ce[1], sums.zero_loss += r.ce[2];
      sums.kl_spliced += r.kl[0], sums.kl_zero += r.kl[1];
    }
  }
  sums.n_predictions = P;
  sums.n_positions = N;
  return sums;
}

}  // namespace saepipe
