// The SAE's forward and backward on one GPU for every architecture: the device counterpart of
// sae_encode_decode / sae_forward_backward (pipeline/sae/sae.hpp), from the kernels of
// kernels_cuda.hpp and the architecture pieces of architectures.hpp. The training step
// (train_step.cu) and the stats passes use it; tests/gpu checks it against the CPU.
//
//   xc = x - b_dec;  pre = xc W_encT^T + b_enc;  z = select(pre)
//   x_hat = W_dec^T z + b_dec;  loss = (1/B) sum_n ||x_hat_n - x_n||^2 + penalty + auxk_coef * AuxK
//   select: topk (ReLU of the per-row top k), batchtopk (the global B*k largest, threshold
//   found over the data group), relu (pre > 0), jumprelu (pre > exp(log_threshold)).
//
// The encoder GEMM runs on blocks of encoder_block rows counted from the first row of x (the
// caller aligns them to the global batch, as the CPU does), in `precision`; every other sum
// runs in a fixed order, so a call is deterministic on a given GPU.
//
// Shape legend: N this call's rows, D d_in, F d_sae, K k, W selection width, A auxk
// (effective: min(auxk, #dead)), B global batch, G encoder block.
//   Parameters and gradients use SaeParams' flat layout (SaeLayout):
//   W_encT [F,D] | b_enc [F] | W_dec [F,D] | b_dec [D] | log_threshold [F].
#pragma once
#include <cstdint>
#include <functional>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/sae/cuda/architectures.hpp"
#include "pipeline/sae/sae.hpp"

namespace saepipe::cuda {

// Offsets into the flat parameter / gradient vector (SaeParams' layout).
struct SaeLayout {
  int64_t D = 0, F = 0;
  int64_t W_encT() const { return 0; }
  int64_t b_enc() const { return D * F; }
  int64_t W_dec() const { return D * F + F; }
  int64_t b_dec() const { return 2 * D * F + F; }
  int64_t log_threshold() const { return 2 * D * F + F + D; }
  int64_t size() const { return 2 * D * F + 2 * F + D; }
};

// The sums one forward_backward adds to (device doubles, in this order).
enum StepSum { kSumSqErr = 0, kSumActive = 1, kSumAuxSqErr = 2, kSumPenalty = 3, kStepSums = 4 };

// Latent sharding (the device counterpart of LatentShard, pipeline/sae/sae.hpp): the DeviceSae
// holds latents [first, first + d_sae) of `total`; the other shards of its group hold the rest
// for the same rows. Device pointers, ordered on `stream`; both hooks are collectives over the
// group (called also with no rows).
struct DeviceLatentShard {
  int64_t first = 0, total = 0;
  // Adds the terms every shard computes alike from the shared reconstruction (b_dec's
  // reconstruction gradient, the squared errors): one shard of the group does.
  bool lead = true;
  // Each row's best K over every shard, by (value, then lower latent) as topk_rows: in, this
  // shard's best W per row [N,W] (global latents, -1 empty); out [N,K], the row's global best K
  // restricted to this shard (local latents; the other shards' slots empty).
  std::function<void(const int32_t* idx_in, const float* val_in, int64_t N, int64_t W, int64_t K, int32_t* idx_out,
                     float* val_out, cudaStream_t stream)>
      merge_top;
  // Sums rows [N,D] (float64) over the group.
  std::function<void(double* rows, int64_t N, int64_t D, cudaStream_t stream)> sum_rows;
};

class DeviceSae {
 public:
  // cfg: architecture, k, auxk, coefficients; encoder_block 0 means one GEMM per call
  // (bounded by kMaxEncoderRows). cfg.kth_largest is not used: batchtopk sums its histograms
  // with sum_over_ranks. `shard` (nullable; it outlives the DeviceSae): latent sharding, d_sae
  // this shard's latents. Sharded, the selections are the group's (topk and AuxK merged,
  // batchtopk's threshold over sum_over_ranks' ranks), the reconstruction the group's float64
  // sum rounded once, and `dead` (device [total]) and n_dead span every shard's latents.
  DeviceSae(int64_t d_in, int64_t d_sae, const SaeConfig& cfg, GemmPrecision precision,
            const DeviceLatentShard* shard = nullptr);
  const SaeLayout& layout() const { return layout_; }
  SaeConfig& config() { return cfg_; }  // l1_coef and l0_coef change per step

  // Forward + backward for this call's N rows, which are rows [lead, lead + N) of
  // x [lead + N + tail, D] (the others complete the encoder blocks around them): grad [P] +=
  // the gradient of the loss with batch size global_batch; fire [F] (nullable) += the rows on
  // which each latent is active; sums [kStepSums] +=. dead [F] (nullable) marks the dead latents
  // for AuxK, n_dead (host) counts them. batchtopk calls sum_over_ranks three times (every rank
  // must call this, also with N = 0). All pointers are device memory.
  void forward_backward(const float* params, const float* x, int64_t lead, int64_t N, int64_t tail,
                        int64_t global_batch, const uint8_t* dead, int64_t n_dead, double* grad,
                        unsigned long long* fire, double* sums, const SumOverRanks& sum_over_ranks, Blas& blas,
                        cudaStream_t stream);

  // Forward only, one process holding the whole batch (inference: topk, relu or jumprelu):
  // codes idx/val [N, width()] and x_hat recon() [N,D].
  void encode_decode(const float* params, const float* x, int64_t N, Blas& blas, cudaStream_t stream);

  // The last call's selection, reconstruction and (forward_backward) per-row squared errors.
  int64_t width() const { return width_; }
  const int32_t* idx() const { return idx_.data(); }
  const float* val() const { return val_.data(); }
  const float* recon() const { return recon_.data(); }
  const double* row_sq() const { return row_sq_.data(); }
  float batch_threshold() const { return batch_threshold_; }  // batchtopk

  // Rows per encoder GEMM when encoder_block is 0 (bounds the [rows, F] pre-activations).
  static constexpr int64_t kMaxEncoderRows = 4096;

 private:
  void encode(const float* params, const float* x, int64_t lead, int64_t N, int64_t tail, int64_t global_batch,
              const uint8_t* dead, int64_t n_dead, const SumOverRanks& sum_over_ranks, Blas& blas,
              cudaStream_t stream);
  void reserve(int64_t N_ext, int64_t N, int64_t W, int64_t A);
  // Sharded: this shard's candidates cand [N,W] (local latents) to global ones, merged by the
  // group into idx/val [N,K].
  void merge_candidates(int32_t* cand_idx, const float* cand_val, int64_t N, int64_t W, int64_t K, int32_t* idx,
                        float* val, cudaStream_t stream);
  // out [N,D] = b (nullable) + the selected decoder rows: float, or sharded the group's
  // float64 sum rounded once.
  void decode(const float* params, const int32_t* idx, const float* val, int64_t N, int64_t W, const float* b,
              float* out, cudaStream_t stream);

  SaeLayout layout_;
  SaeConfig cfg_;
  GemmPrecision precision_;
  bool topk_;          // per-row selection (topk): pre is consumed block by block
  const DeviceLatentShard* shard_;  // latent sharding; null: every latent here
  int64_t width_ = 0, aux_width_ = 0;
  float batch_threshold_ = 0;
  DeviceBuffer<float> xc_, pre_, block_, val_, recon_, g_, dval_;
  DeviceBuffer<float> aux_val_, aux_recon_, aux_g_, aux_dval_;
  DeviceBuffer<__nv_bfloat16> xc_bf16_, W_encT_bf16_;
  DeviceBuffer<int32_t> idx_, aux_idx_, count_;
  DeviceBuffer<double> row_sq_, aux_row_sq_, s_f_, bdec_acc_, norm_, zsum_;
  DeviceBuffer<unsigned long long> active_;
  DeviceBuffer<int32_t> cand_idx_, aux_cand_idx_;  // sharded: this shard's best per row
  DeviceBuffer<float> cand_val_, aux_cand_val_;
  DeviceBuffer<double> recon64_;                    // sharded: [N,D] partial reconstruction
};

// After the gradient is summed over ranks: Adam on every parameter from the float32 gradient,
// the decoder rows fused with the projection and renormalisation when unit_norm_decoder (as
// sae_apply_gradient). t is the step number (from 1); log_threshold moves at lr_threshold.
void sae_apply_adam(const SaeLayout& L, float* params, float* grad, float* m, float* v, int64_t t, float lr,
                    float lr_threshold, float beta1, float beta2, float eps, bool unit_norm_decoder,
                    cudaStream_t stream);

}  // namespace saepipe::cuda
