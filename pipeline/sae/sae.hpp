// The SAE interface shared by every architecture and dictionary kind:
//   pre = (x - b_dec) W_enc + b_enc,  z = select(pre),  x_hat = W_dec^T z + b_dec
//   loss = (1/B) sum_n ||x_hat_n - y_n||^2 + penalty + auxk_coef * AuxK term
// with y = x for an SAE. Architectures differ in `select` and the penalty
// (pipeline/sae/architectures.hpp):
//   topk       z = ReLU(TopK_k(pre)) per token (Gao et al. 2024); no penalty
//   batchtopk  keep the B*k largest positive pre over the whole global batch (all ranks);
//              at inference a threshold (saved as /threshold) replaces the batch top-k
//   relu       z = ReLU(pre); penalty l1_coef * (1/B) sum_n sum_f z_nf ||W_dec,f||
//   jumprelu   z = pre * H(pre - theta_f), theta = exp(log_threshold) learned through a
//              straight-through estimator with a rectangle kernel of width `bandwidth`;
//              penalty l0_coef * (1/B) sum_n #active (Rajamanoharan et al. 2024, Gemma Scope)
//   matryoshka batchtopk's selection; the loss sums the reconstruction error of every nested
//              prefix of the dictionary (latents f < M_j, j = 1..J, M_J = F), so the first
//              latents must reconstruct alone (Bussmann et al. 2025); penalty = the prefixes'
//              errors other than the whole dictionary's
//   gated      gate pre (= pi_gate, b_enc = b_gate) and magnitude m = exp(r_mag) (pre - b_enc)
//              + b_mag sharing W_enc; z = 1[pre > 0] ReLU(m) (Rajamanoharan et al. 2024);
//              penalty l1_coef * (1/B) sum ReLU(pre) + (1/B) sum_n ||x_hat_gate,n - y_n||^2
//              with x_hat_gate = W_dec^T ReLU(pre) + b_dec through a frozen decoder
// Dictionary kinds (SaeShape):
//   transcoder  reads x [N, d_in] and reconstructs a target y [N, d_out] (another hook): the
//               encoder reads x as it is (b_dec lives in the output's space); skip adds a
//               learned dense W_skip: x_hat += W_skip x (skip transcoders, Paulo et al. 2025)
//   crosscoder  layers L > 1: x and y are the concatenation of L hooks (d_in = d_out = L * w),
//               one shared code; decoder row f splits into L blocks (its per-layer directions);
//               relu's L1 weighs z by the sum of the blocks' norms (Lindsey et al. 2024)
// AuxK (dead latents reconstruct the residual) applies to every architecture when auxk > 0.
// B is the global batch size, so gradients from every rank add up to the gradient of the
// global batch.
//
// Shape legend: N tokens, D d_in, O d_out, F d_sae, K k, W selection width (max active per
// token in this batch; = k for topk), A auxk, J matryoshka prefixes, L crosscoder layers.
// Internally the encoder is stored transposed (W_encT [F,D]) so that per-latent gradient
// rows are contiguous; checkpoints carry W_enc [D,F] as the contract says.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace saepipe {

enum class Architecture { TopK, BatchTopK, ReLU, JumpReLU, Matryoshka, Gated };
// "topk" | "batchtopk" | "relu" | "jumprelu" | "matryoshka" | "gated"; anything else is a user
// error listing them.
Architecture parse_architecture(const std::string& name);
std::string to_string(Architecture a);
// Architectures whose decoder rows are kept at unit norm (ReLU weighs its L1 by the norms).
inline bool unit_norm_decoder(Architecture a) { return a != Architecture::ReLU; }
// matryoshka's prefix sizes for a job's train.matryoshka_prefixes (validated by the job parser):
// `given` with d_sae appended when it is not the last; empty: d_sae/16, d_sae/8, d_sae/4, d_sae/2,
// d_sae (those >= 1, without repeats).
std::vector<int64_t> matryoshka_prefixes_in_force(const std::vector<int64_t>& given, int64_t d_sae);
// Architectures that keep the B*k largest pre-activations of the global batch (and a threshold
// at inference).
inline bool batch_selection(Architecture a) { return a == Architecture::BatchTopK || a == Architecture::Matryoshka; }

// What a dictionary reads and writes, and the parameters it has beyond the common ones.
struct SaeShape {
  int64_t d_in = 0, d_sae = 0;
  int64_t d_out = 0;        // 0: d_in (an SAE or a crosscoder)
  bool transcoder = false;  // the encoder reads x as it is; y is another hook
  bool skip = false;        // W_skip [O, D] (skip transcoders)
  bool gated = false;       // r_mag, b_mag (gated)
  int64_t layers = 1;       // crosscoders: decoder rows in `layers` blocks of d_out / layers
};

// All trainable parameters in one contiguous buffer, in this order:
//   W_encT [F,D] | b_enc [F] | W_dec [F,O] | b_dec [O] | log_threshold [F]
//   | r_mag [F] | b_mag [F] (gated) | W_skip [O,D] (skip)
// so that gradients, Adam moments and the allreduce each treat them as one vector.
// log_threshold is trained by JumpReLU only; other architectures leave its gradient 0. An SAE
// (O = D, no gated or skip parts) has the layout of the first, SAE-only interface.
struct SaeParams {
  int64_t d_in = 0, d_sae = 0, d_out = 0;
  bool transcoder = false, skip = false, gated = false;
  int64_t layers = 1;
  std::vector<float> data;

  SaeParams() = default;
  SaeParams(int64_t d_in, int64_t d_sae);
  explicit SaeParams(const SaeShape& shape);
  SaeShape shape() const { return {d_in, d_sae, d_out, transcoder, skip, gated, layers}; }
  int64_t size() const { return int64_t(data.size()); }
  static int64_t size_for(int64_t d_in, int64_t d_sae) { return 2 * d_in * d_sae + 2 * d_sae + d_in; }
  static int64_t size_for(const SaeShape& s);
  // Offsets into `data` (and into any gradient vector with the same layout).
  int64_t off_W_encT() const { return 0; }
  int64_t off_b_enc() const { return d_in * d_sae; }
  int64_t off_W_dec() const { return d_in * d_sae + d_sae; }
  int64_t off_b_dec() const { return off_W_dec() + d_sae * d_out; }
  int64_t off_log_threshold() const { return off_b_dec() + d_out; }
  int64_t off_r_mag() const { return off_log_threshold() + d_sae; }
  int64_t off_b_mag() const { return off_r_mag() + d_sae; }
  int64_t off_W_skip() const { return off_log_threshold() + d_sae + (gated ? 2 * d_sae : 0); }
  float* W_encT() { return data.data() + off_W_encT(); }
  float* b_enc() { return data.data() + off_b_enc(); }
  float* W_dec() { return data.data() + off_W_dec(); }
  float* b_dec() { return data.data() + off_b_dec(); }
  float* log_threshold() { return data.data() + off_log_threshold(); }
  float* r_mag() { return data.data() + off_r_mag(); }
  float* b_mag() { return data.data() + off_b_mag(); }
  float* W_skip() { return data.data() + off_W_skip(); }
  const float* W_encT() const { return data.data() + off_W_encT(); }
  const float* b_enc() const { return data.data() + off_b_enc(); }
  const float* W_dec() const { return data.data() + off_W_dec(); }
  const float* b_dec() const { return data.data() + off_b_dec(); }
  const float* log_threshold() const { return data.data() + off_log_threshold(); }
  const float* r_mag() const { return data.data() + off_r_mag(); }
  const float* b_mag() const { return data.data() + off_b_mag(); }
  const float* W_skip() const { return data.data() + off_W_skip(); }
};

// Init: W_dec rows random unit vectors (Gaussian, normalised) from `seed`; an SAE or crosscoder
// ties W_encT = W_dec (i.e. W_enc = W_dec^T), a transcoder draws its encoder rows the same way
// from another stream; b_enc = 0, b_dec = 0, log_threshold = 0, r_mag = b_mag = 0, W_skip = 0.
// Row f's values are a function of (seed, first_latent + f) alone, so a latent shard holding
// latents [first_latent, first_latent + d_sae) draws exactly its rows of the whole dictionary.
void init_tied(SaeParams& p, uint64_t seed, int64_t first_latent = 0);

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

// Latent sharding (pipeline/sae/train_step_sharded.cpp): this call holds latents [first,
// first + d_sae) of a dictionary of `total` latents; the other shards of its group hold the
// rest, for the same rows. Selections and reconstructions are exchanged by these hooks, so
// that every shard ends with exactly the unsharded selection of its latents and the whole
// reconstruction. Null in SaeConfig: the call holds every latent.
struct LatentShard {
  int64_t first = 0, total = 0;
  // Adds the terms every shard computes alike from the shared reconstruction (b_dec's
  // reconstruction gradient, the squared errors): one shard of the group does.
  bool lead = true;
  // Each row's best K over every shard, by (value, then lower latent index) as topk_rows:
  // in: this shard's best W_in per row (global latent indices, best first, empty slots -1);
  // out [N,K]: the row's global best K restricted to this shard (local indices; the other
  // shards' slots empty). Collective over the group.
  std::function<void(const int32_t* idx_in, const float* val_in, int64_t N, int64_t W_in, int64_t K,
                     int32_t* idx_out, float* val_out)>
      merge_top;
  // Sums a [N,D] buffer over the group (the float64 partial reconstructions). Collective.
  std::function<void(double* rows, int64_t N, int64_t D)> sum_rows;
};

struct SaeConfig {
  Architecture architecture = Architecture::TopK;
  int64_t k = 32;             // topk / batchtopk / matryoshka
  int64_t auxk = 256;         // 0 disables AuxK
  double auxk_coef = 1.0 / 32;
  double l1_coef = 0.0;       // relu, gated: the current coefficient (after warm-up)
  // matryoshka: the nested prefix sizes M_1 < ... < M_J = d_sae (empty: the whole dictionary only)
  std::vector<int64_t> prefixes;
  double l0_coef = 0.0;       // jumprelu
  double bandwidth = 0.001;   // jumprelu straight-through kernel width
  KthLargestFn kth_largest;   // batchtopk across ranks; null = local
  // Encoder rows per BLAS call, counted from the first row passed (0 = one call). BLAS
  // rounds a row differently depending on the call's shape, so the trainer passes rows in
  // globally aligned blocks: every row is then computed by the same call whatever the
  // number of ranks, and the weights do not depend on it (see lead/tail below).
  int64_t encoder_block = 0;
  // Encoder latents per BLAS call, in blocks counted from this call's first latent (0 = one
  // call): BLAS also rounds differently with the number of columns, so the trainer uses
  // fixed blocks, and a latent shard starts on a block boundary (the same calls as unsharded).
  int64_t encoder_cols = 0;
  // Latent sharding; null: unsharded. With a shard, `dead` passed to sae_forward_backward
  // spans all `total` latents (AuxK picks among every shard's dead latents).
  const LatentShard* shard = nullptr;
};
using TopKConfig = SaeConfig;  // the name the first (TopK-only) interface used

// Scratch buffers reused across steps (grown on demand).
struct SaeWorkspace {
  int64_t width = 0;                                   // W of the last forward
  std::vector<float> xc, pre, val, recon, g, dval;     // [N,D] [N,F] [N,W] [N,O] [N,O] [N,W]
  std::vector<int32_t> idx;                            // [N,W]
  std::vector<float> aux_val, aux_recon, aux_g, aux_dval;  // [N,A] [N,O] [N,O] [N,A]
  std::vector<int32_t> aux_idx;                            // [N,A]
  std::vector<float> candidates;                           // batchtopk
  std::vector<double> recon64;                             // [N,D] a decode's float64 sum
  std::vector<int32_t> shard_idx;                          // latent sharding: this shard's
  std::vector<float> shard_val;                            //   best per row [N, min(K, F)]
  float batch_threshold = 0.0f;  // batchtopk: the threshold of the last forward
  // gated: the gate set (pre > 0) [N, gate_width] with ReLU(pre), and its gradient
  int64_t gate_width = 0;
  std::vector<int32_t> gate_idx;
  std::vector<float> gate_val, gate_dval, gate_recon;  // [N,G] [N,G] [N,O]
  std::vector<float> skip_out;                         // skip: x W_skip^T [N,O]
  std::vector<float> prefix_g;                         // matryoshka: suffix sums of g [J,N,O]
  std::vector<int32_t> prefix_idx;                     // matryoshka: idx of one prefix group [N,W]
  std::vector<double> prefix_acc;                      // matryoshka, sharded: each group's sum [J,N,O]
};

// Sums over the local tokens of one step (the trainer reduces them across ranks).
struct SaeStepSums {
  double sum_sq_err = 0;  // sum_n ||x_hat_n - x_n||^2
  double sum_active = 0;  // number of (token, latent) pairs with z > 0
  double aux_sq_err = 0;  // sum_n ||e_hat_n - r_n||^2 (0 when AuxK is off or nothing is dead)
  double penalty = 0;     // sum_n of the rest of the loss: the L1 or L0 term (coefficient
                          // included), matryoshka's smaller prefixes' errors, gated's L1 + gate error
  int64_t n_tokens = 0;
};

// Forward only: z as (idx, val) [N,W] and x_hat [N,O] in ws.idx / ws.val / ws.recon, W in
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
// `target` [N,O]: the rows to reconstruct (transcoders); null: this call's rows of x.
SaeStepSums sae_forward_backward(const SaeParams& p, const SaeConfig& cfg, const float* x,
                                 int64_t N, int64_t global_batch, const uint8_t* dead,
                                 double* grad, int64_t* fire_count, SaeWorkspace& ws,
                                 int64_t lead = 0, int64_t tail = 0, const float* target = nullptr);

// Plain reference loss (float64 throughout, dense loops, one process holding all N tokens;
// batchtopk and matryoshka keep global_batch * k activations among them) for finite-difference
// tests. The trained gradient holds some things constant: AuxK's residual r = y - x_hat and
// gated's decoder in x_hat_gate. Here they are computed from `frozen` (null: p itself), so with
// frozen fixed at the point of the step, the trained gradient is this function's derivative with
// respect to p (where the selection does not change). The JumpReLU threshold gradient is a
// pseudo-derivative, not this function's. `target` as in sae_forward_backward.
double sae_loss_reference(const SaeParams& p, const SaeConfig& cfg, const float* x, int64_t N,
                          int64_t global_batch, const uint8_t* dead, const float* target = nullptr,
                          const SaeParams* frozen = nullptr);

// After the gradient is averaged across ranks: (unit-norm decoders) project the decoder
// gradient, Adam step, (unit-norm decoders) renormalise decoder rows.
struct AdamConfig {
  float lr = 2e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 6.25e-10f;
  float threshold_lr_scale = 1.0f;  // log_threshold learns at lr * this (train.threshold_lr_scale)
};
struct AdamState {
  std::vector<float> m, v;
  int64_t t = 0;
};
void sae_apply_gradient(SaeParams& p, std::vector<float>& grad, AdamState& state,
                        const AdamConfig& cfg, bool unit_norm_decoder = true);

}  // namespace saepipe
