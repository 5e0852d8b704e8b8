// The TopK SAE training step on one GPU, from the kernels of kernels_cuda.hpp: the device
// counterpart of sae_forward_backward + sae_apply_gradient (pipeline/sae/sae.hpp) for
// architecture "topk", AuxK included. Not yet used by the train stage (see README, issue 6);
// tests/gpu checks it against the CPU and bench/gpu times it.
//
//   xc = x - b_dec;  pre = xc W_encT^T (+ b_enc, fused into the top-k);  z = ReLU(TopK_k(pre))
//   x_hat = W_dec^T z + b_dec;  loss = (1/B) sum_n ||x_hat_n - x_n||^2 + auxk_coef * AuxK
//   AuxK: e_hat = W_dec^T ReLU(TopK_A(pre over dead latents)), A = min(auxk, #dead),
//         term (1/B) sum_n ||e_hat_n - (x_n - x_hat_n)||^2 with x - x_hat held fixed.
//
// Shape legend: N tokens, D d_in, F d_sae, K k, A auxk, B global batch.
//   Parameters and gradients use SaeParams' flat layout:
//   W_encT [F,D] | b_enc [F] | W_dec [F,D] | b_dec [D] | log_threshold [F].
#pragma once
#include <cstdint>

#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {

struct TopKStepConfig {
  int64_t k = 32;
  // Encoder GEMM: BF16 converts xc and W_encT to bf16 copies and multiplies them with fp32
  // accumulation; TF32 / FP32 multiply the fp32 values.
  GemmPrecision precision = GemmPrecision::BF16;
  // Tokens per encoder GEMM + top-k round (0: the whole batch at once). Smaller rounds keep
  // the [rows, F] pre-activations in L2 between the GEMM and the top-k, and bound memory.
  int64_t chunk_tokens = 0;
  int64_t auxk = 0;             // 0: no AuxK term
  double auxk_coef = 1.0 / 32;
};

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

class TopKSaeStep {
 public:
  TopKSaeStep(int64_t d_in, int64_t d_sae, const TopKStepConfig& cfg);
  const SaeLayout& layout() const { return layout_; }

  // Forward + backward for N tokens x [N,D] of a global batch of `global_batch` tokens:
  // grad += the gradient of the loss above; fire_count [F] (nullable) += the tokens on which
  // each latent is active. `dead` [F] (nullable) marks the dead latents for AuxK and n_dead
  // (a host value) counts them. All pointers are device memory; nothing synchronises. The
  // sums accumulate on the device (take_sums()).
  void forward_backward(const float* params, const float* x, int64_t N, int64_t global_batch, const uint8_t* dead,
                        int64_t n_dead, float* grad, int64_t* fire_count, Blas& blas, cudaStream_t stream);
  void forward_backward(const float* params, const float* x, int64_t N, int64_t global_batch, const uint8_t* dead,
                        int64_t n_dead, double* grad, int64_t* fire_count, Blas& blas, cudaStream_t stream);

  struct Sums {
    double sum_sq_err = 0;  // sum_n ||x_hat_n - x_n||^2
    int64_t active = 0;     // (token, latent) pairs with z > 0
    double aux_sq_err = 0;  // sum_n ||e_hat_n - r_n||^2 (0 without AuxK)
  };
  // The sums since the last reset (synchronises the stream), then resets them.
  Sums take_sums(cudaStream_t stream);

  // After the gradient is summed over ranks: Adam on every parameter from the float32
  // gradient, the decoder rows fused with the projection and renormalisation when
  // unit_norm_decoder (as sae_apply_gradient). t is the step number (from 1).
  void apply_adam(float* params, float* grad, float* m, float* v, int64_t t, float lr, float beta1, float beta2,
                  float eps, bool unit_norm_decoder, cudaStream_t stream);

  // The last forward's selection [N,K] and reconstruction [N,D] (device).
  const int32_t* idx() const { return idx_.data(); }
  const float* val() const { return val_.data(); }
  const float* recon() const { return recon_.data(); }

 private:
  template <class G>
  void run(const float* params, const float* x, int64_t N, int64_t global_batch, const uint8_t* dead, int64_t n_dead,
           G* grad, int64_t* fire_count, Blas& blas, cudaStream_t stream);
  void reserve(int64_t N);

  SaeLayout layout_;
  TopKStepConfig cfg_;
  int64_t capacity_ = 0;  // tokens the buffers hold
  DeviceBuffer<float> xc_, pre_, val_, recon_, g_, dval_;
  DeviceBuffer<float> aux_val_, aux_recon_, aux_g_, aux_dval_;  // [N,A] [N,D] [N,D] [N,A]
  DeviceBuffer<__nv_bfloat16> xc_bf16_, W_encT_bf16_;
  DeviceBuffer<int32_t> idx_, aux_idx_;
  DeviceBuffer<double> row_sq_, s_f_, bdec_acc_, sums_;  // sums_: [sum_sq_err, active, aux_sq_err]
};

}  // namespace saepipe::cuda
