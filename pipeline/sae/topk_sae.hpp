// TopK sparse autoencoder (Gao et al. 2024) with AuxK for dead latents:
//   pre = (x - b_dec) W_enc + b_enc,  z = ReLU(TopK(pre)),  x_hat = W_dec^T z + b_dec
//   loss = (1/B) sum_n ||x_hat_n - x_n||^2  +  auxk_coef * (1/B) sum_n ||e_hat_n - r_n||^2
// where r_n = x_n - x_hat_n (no gradient through it), e_hat_n = sum over the top-auxk
// pre-activations among dead latents of ReLU(pre) * W_dec[f] (no bias). B is the global batch
// size, so gradients from every rank add up to the gradient of the global batch.
//
// Shape legend: N tokens, D d_in, F d_sae, K k, A auxk.
// Internally the encoder is stored transposed (W_encT [F,D]) so that per-latent gradient
// rows are contiguous; checkpoints carry W_enc [D,F] as the contract says.
#pragma once
#include <cstdint>
#include <vector>

namespace saepipe {

// All trainable parameters in one contiguous buffer, in this order:
//   W_encT [F,D] | b_enc [F] | W_dec [F,D] | b_dec [D]
// so that gradients, Adam moments and the allreduce each treat them as one vector.
struct SaeParams {
  int64_t d_in = 0, d_sae = 0;
  std::vector<float> data;

  SaeParams() = default;
  SaeParams(int64_t d_in, int64_t d_sae);
  int64_t size() const { return int64_t(data.size()); }
  static int64_t size_for(int64_t d_in, int64_t d_sae) { return 2 * d_in * d_sae + d_sae + d_in; }
  // Offsets into `data` (and into any gradient vector with the same layout).
  int64_t off_W_encT() const { return 0; }
  int64_t off_b_enc() const { return d_in * d_sae; }
  int64_t off_W_dec() const { return d_in * d_sae + d_sae; }
  int64_t off_b_dec() const { return 2 * d_in * d_sae + d_sae; }
  float* W_encT() { return data.data() + off_W_encT(); }
  float* b_enc() { return data.data() + off_b_enc(); }
  float* W_dec() { return data.data() + off_W_dec(); }
  float* b_dec() { return data.data() + off_b_dec(); }
  const float* W_encT() const { return data.data() + off_W_encT(); }
  const float* b_enc() const { return data.data() + off_b_enc(); }
  const float* W_dec() const { return data.data() + off_W_dec(); }
  const float* b_dec() const { return data.data() + off_b_dec(); }
};

// Tied init: W_dec rows random unit vectors (Gaussian, normalised) from `seed`,
// W_encT = W_dec (i.e. W_enc = W_dec^T), b_enc = 0, b_dec = 0.
void init_tied(SaeParams& p, uint64_t seed);

// Geometric median of the rows of x [N,D] (Weiszfeld iterations, started at the mean).
std::vector<float> geometric_median(const float* x, int64_t N, int64_t D, int max_iter = 100,
                                    double tol = 1e-7);
std::vector<float> row_mean(const float* x, int64_t N, int64_t D);

// Scratch buffers reused across steps (grown on demand).
struct SaeWorkspace {
  std::vector<float> xc, pre, val, recon, g, dval;   // [N,D] [N,F] [N,K] [N,D] [N,D] [N,K]
  std::vector<int32_t> idx;                           // [N,K]
  std::vector<float> aux_val, aux_recon, aux_g, aux_dval;  // [N,A] [N,D] [N,D] [N,A]
  std::vector<int32_t> aux_idx;                            // [N,A]
};

// Sums over the local tokens of one step (the trainer reduces them across ranks).
struct SaeStepSums {
  double sum_sq_err = 0;  // sum_n ||x_hat_n - x_n||^2
  double sum_active = 0;  // number of (token, latent) pairs with z > 0
  double aux_sq_err = 0;  // sum_n ||e_hat_n - r_n||^2 (0 when AuxK is off or nothing is dead)
  int64_t n_tokens = 0;
};

struct TopKConfig {
  int64_t k = 32;
  int64_t auxk = 256;        // 0 disables AuxK
  double auxk_coef = 1.0 / 32;
};

// Forward only: z as (idx, val) [N,K] and x_hat [N,D] in ws.idx / ws.val / ws.recon.
// Slots whose top-k value is <= 0 (z = 0 after the ReLU) have idx = -1, val = 0.
void sae_encode_decode(const SaeParams& p, const TopKConfig& cfg, const float* x, int64_t N,
                       SaeWorkspace& ws);

// Forward + backward for N local tokens. Adds the gradient of the loss above (with batch
// size `global_batch`) into grad (double, same layout as p.data), and the number of local
// tokens on which latent f is active (z > 0) into fire_count[f] ([F]). `dead` ([F],
// nullable) marks the dead latents for AuxK; fire_count may be null. The accumulation order
// does not depend on the number of OpenMP threads; the encoder sgemm may round differently
// with the BLAS thread count or the number of rows per call (last-bit differences).
SaeStepSums sae_forward_backward(const SaeParams& p, const TopKConfig& cfg, const float* x,
                                 int64_t N, int64_t global_batch, const uint8_t* dead,
                                 double* grad, int64_t* fire_count, SaeWorkspace& ws);

// Plain reference loss (float64 throughout, dense loops) for finite-difference tests. With
// AuxK on, the trained gradient holds r fixed, so it is not this function's derivative.
double sae_loss_reference(const SaeParams& p, const TopKConfig& cfg, const float* x, int64_t N,
                          int64_t global_batch, const uint8_t* dead);

// After the gradient is averaged across ranks: project the decoder gradient, Adam step,
// renormalise decoder rows.
struct AdamConfig {
  float lr = 2e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 6.25e-10f;
};
struct AdamState {
  std::vector<float> m, v;
  int64_t t = 0;
};
void sae_apply_gradient(SaeParams& p, std::vector<float>& grad, AdamState& state,
                        const AdamConfig& cfg);

}  // namespace saepipe
