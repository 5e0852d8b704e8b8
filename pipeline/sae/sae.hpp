// The SAE interface shared by every architecture:
//   pre = (x - b_dec) W_enc + b_enc,  z = select(pre),  x_hat = W_dec^T z + b_dec
//   loss = (1/B) sum_n ||x_hat_n - x_n||^2 + penalty + auxk_coef * AuxK term
// Architectures differ only in `select` and the penalty (pipeline/sae/architectures.hpp):
//   topk       z = ReLU(TopK_k(pre)) per token (Gao et al. 2024); no penalty
//   batchtopk  keep the B*k largest positive pre over the whole global batch (all ranks);
//              at inference a threshold (saved as /threshold) replaces the batch top-k
//   relu       z = ReLU(pre); penalty l1_coef * (1/B) sum_n sum_f z_nf ||W_dec,f||
//   jumprelu   z = pre * H(pre - theta_f), theta = exp(log_threshold) learned through a
//              straight-through estimator with a rectangle kernel of width `bandwidth`;
//              penalty l0_coef * (1/B) sum_n #active (Rajamanoharan et al. 2024, Gemma Scope)
// AuxK (dead latents reconstruct the residual) applies to every architecture when auxk > 0.
// B is the global batch size, so gradients from every rank add up to the gradient of the
// global batch.
//
// Shape legend: N tokens, D d_in, F d_sae, K k, W selection width (max active per token in
// this batch; = k for topk), A auxk.
// Internally the encoder is stored transposed (W_encT [F,D]) so that per-latent gradient
// rows are contiguous; checkpoints carry W_enc [D,F] as the contract says.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace saepipe {

enum class Architecture { TopK, BatchTopK, ReLU, JumpReLU };
// "topk" | "batchtopk" | "relu" | "jumprelu"; anything else is a user error listing them.
Architecture parse_architecture(const std::string& name);
std::string to_string(Architecture a);
// Architectures whose decoder rows are kept at unit norm (ReLU weighs its L1 by the norms).
inline bool unit_norm_decoder(Architecture a) { return a != Architecture::ReLU; }

// All trainable parameters in one contiguous buffer, in this order:
//   W_encT [F,D] | b_enc [F] | W_dec [F,D] | b_dec [D] | log_threshold [F]
// so that gradients, Adam moments and the allreduce each treat them as one vector.
// log_threshold is trained by JumpReLU only; other architectures leave its gradient 0.
struct SaeParams {
  int64_t d_in = 0, d_sae = 0;
  std::vector<float> data;

  SaeParams() = default;
  SaeParams(int64_t d_in, int64_t d_sae);
  int64_t size() const { return int64_t(data.size()); }
  static int64_t size_for(int64_t d_in, int64_t d_sae) { return 2 * d_in * d_sae + 2 * d_sae + d_in; }
  // Offsets into `data` (and into any gradient vector with the same layout).
  int64_t off_W_encT() const { return 0; }
  int64_t off_b_enc() const { return d_in * d_sae; }
  int64_t off_W_dec() const { return d_in * d_sae + d_sae; }
  int64_t off_b_dec() const { return 2 * d_in * d_sae + d_sae; }
  int64_t off_log_threshold() const { return 2 * d_in * d_sae + d_sae + d_in; }
  float* W_encT() { return data.data() + off_W_encT(); }
  float* b_enc() { return data.data() + off_b_enc(); }
  float* W_dec() { return data.data() + off_W_dec(); }
  float* b_dec() { return data.data() + off_b_dec(); }
  float* log_threshold() { return data.data() + off_log_threshold(); }
  const float* W_encT() const { return data.data() + off_W_encT(); }
  const float* b_enc() const { return data.data() + off_b_enc(); }
  const float* W_dec() const { return data.data() + off_W_dec(); }
  const float* b_dec() const { return data.data() + off_b_dec(); }
  const float* log_threshold() const { return data.data() + off_log_threshold(); }
};

// Tied init: W_dec rows random unit vectors (Gaussian, normalised) from `seed`,
// W_encT = W_dec (i.e. W_enc = W_dec^T), b_enc = 0, b_dec = 0, log_threshold = 0.
void init_tied(SaeParams& p, uint64_t seed);

// Geometric median of the rows of x [N,D] (Weiszfeld iterations, started at the mean).
std::vector<float> geometric_median(const float* x, int64_t N, int64_t D, int max_iter = 100,
                                    double tol = 1e-7);
std::vector<float> row_mean(const float* x, int64_t N, int64_t D);

// BatchTopK's global selection: given this rank's candidate values (positive
// pre-activations, any order; the callee may reorder them), return the kth largest value
// over all ranks' candidates, or 0 when there are fewer than kth in all. The trainer passes
// an MPI version; null means this process holds the whole batch (local_kth_largest).
using KthLargestFn = std::function<float(std::vector<float>& candidates, int64_t kth)>;
float local_kth_largest(std::vector<float>& candidates, int64_t kth);

struct SaeConfig {
  Architecture architecture = Architecture::TopK;
  int64_t k = 32;             // topk / batchtopk
  int64_t auxk = 256;         // 0 disables AuxK
  double auxk_coef = 1.0 / 32;
  double l1_coef = 0.0;       // relu: the current coefficient (after warm-up)
  double l0_coef = 0.0;       // jumprelu
  double bandwidth = 0.001;   // jumprelu straight-through kernel width
  KthLargestFn kth_largest;   // batchtopk across ranks; null = local
  // Encoder rows per BLAS call, counted from the first row passed (0 = one call). BLAS
  // rounds a row differently depending on the call's shape, so the trainer passes rows in
  // globally aligned blocks: every row is then computed by the same call whatever the
  // number of ranks, and the weights do not depend on it (see lead/tail below).
  int64_t encoder_block = 0;
};
using TopKConfig = SaeConfig;  // the name the first (TopK-only) interface used

// Scratch buffers reused across steps (grown on demand).
struct SaeWorkspace {
  int64_t width = 0;                                   // W of the last forward
  std::vector<float> xc, pre, val, recon, g, dval;     // [N,D] [N,F] [N,W] [N,D] [N,D] [N,W]
  std::vector<int32_t> idx;                            // [N,W]
  std::vector<float> aux_val, aux_recon, aux_g, aux_dval;  // [N,A] [N,D] [N,D] [N,A]
  std::vector<int32_t> aux_idx;                            // [N,A]
  std::vector<float> candidates;                           // batchtopk
  float batch_threshold = 0.0f;  // batchtopk: the threshold of the last forward
};

// Sums over the local tokens of one step (the trainer reduces them across ranks).
struct SaeStepSums {
  double sum_sq_err = 0;  // sum_n ||x_hat_n - x_n||^2
  double sum_active = 0;  // number of (token, latent) pairs with z > 0
  double aux_sq_err = 0;  // sum_n ||e_hat_n - r_n||^2 (0 when AuxK is off or nothing is dead)
  double penalty = 0;     // sum_n of the per-token penalty (L1 or L0 term, coefficient included)
  int64_t n_tokens = 0;
};

// Forward only: z as (idx, val) [N,W] and x_hat [N,D] in ws.idx / ws.val / ws.recon, W in
// ws.width. Empty slots (z = 0) have idx = -1, val = 0. `global_batch` matters only to
// batchtopk (it keeps global_batch * k activations across all ranks); the short form takes
// N, i.e. this call holds the whole batch.
// `lead` and `tail`: x holds lead + N + tail rows; only the N rows after the first `lead`
// are this call's tokens, the others only complete the encoder blocks around them.
void sae_encode_decode(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                       int64_t global_batch, SaeWorkspace& ws, int64_t lead = 0, int64_t tail = 0);
inline void sae_encode_decode(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                              SaeWorkspace& ws) {
  sae_encode_decode(p, cfg, x, N, N, ws);
}

// Forward + backward for N local tokens. Adds the gradient of the loss above (with batch
// size `global_batch`) into grad (double, same layout as p.data), and the number of local
// tokens on which latent f is active (z > 0) into fire_count[f] ([F]). `dead` ([F],
// nullable) marks the dead latents for AuxK; fire_count may be null. The accumulation order
// does not depend on the number of OpenMP threads; the encoder sgemm may round differently
// with the BLAS thread count or the number of rows per call (last-bit differences).
SaeStepSums sae_forward_backward(const SaeParams& p, const SaeConfig& cfg, const float* x,
                                 int64_t N, int64_t global_batch, const uint8_t* dead,
                                 double* grad, int64_t* fire_count, SaeWorkspace& ws,
                                 int64_t lead = 0, int64_t tail = 0);

// Plain reference loss (float64 throughout, dense loops, one process holding all N tokens;
// batchtopk keeps global_batch * k activations among them) for finite-difference tests. With
// AuxK on, the trained gradient holds r fixed, so it is not this function's derivative; the
// JumpReLU threshold gradient is a pseudo-derivative, not this function's either.
double sae_loss_reference(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                          int64_t global_batch, const uint8_t* dead);

// After the gradient is averaged across ranks: (unit-norm decoders) project the decoder
// gradient, Adam step, (unit-norm decoders) renormalise decoder rows.
struct AdamConfig {
  float lr = 2e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 6.25e-10f;
};
struct AdamState {
  std::vector<float> m, v;
  int64_t t = 0;
};
void sae_apply_gradient(SaeParams& p, std::vector<float>& grad, AdamState& state,
                        const AdamConfig& cfg, bool unit_norm_decoder = true);

}  // namespace saepipe
