// GPT-2 family forward pass on one GPU: the device counterpart of Gpt2Model
// (pipeline/model/gpt2.hpp), behind the same TransformerModel interface, plus an asynchronous
// harvest pipeline (pinned host slots, copies overlapping the next batch's pass).
//
//   matmuls      cuBLASLt, inputs in the activation type (fp32 / bf16 / fp16), fp32 accumulate;
//                bias and GELU fused as epilogues (CUBLASLT_EPILOGUE_BIAS / GELU_BIAS; GELU in
//                fp32 by the own kernel after the bias epilogue, for parity), and the
//                residual add too (beta = 1 into the residual stream) unless attn_out / mlp_out
//                is hooked at that layer; a matmul whose epilogue cuBLASLt cannot run falls
//                back to the plain product + bias_gelu (gemm_report() says which ran).
//   LayerNorm    fused with the residual add that precedes it (gpt2_kernels.hpp).
//   attention    own kernel (online softmax, fp32 arithmetic), gpt2_kernels.hpp.
//   precision    FP32: every matmul in plain fp32 (no TF32), for parity with the CPU to ~1e-5.
//                BF16 / FP16: weights and matmul inputs in 16 bits; the residual stream, the
//                LayerNorms and every hooked activation stay fp32.
// The weights are uploaded once, when the model is built; the pass stops after the last
// block a hook needs. Passes run one at a time, on the model's own stream.
//
// Shape legend: B sequences, T positions, N = B*T rows, C d_model, I MLP width, V vocab.
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/gpt2_kernels.hpp"
#include "pipeline/model/cuda/harvest_loop.hpp"
#include "pipeline/model/gpt2.hpp"

namespace saepipe {
class Checkpoint;
}

namespace saepipe::cuda {

struct Gpt2CudaOptions {
  ActType precision = ActType::BF16;  // storage type of the matmul and attention inputs
  bool fuse_epilogues = true;         // bias / GELU / residual add inside cuBLASLt's matmuls
};
// "fp32" | "bf16" | "fp16"; anything else is a user error listing them.
ActType parse_precision(const std::string& name);

class Gpt2CudaModel final : public Gpt2Base {
 public:
  // Loads blocks [0, n_blocks) and, when with_ln_f, the final LayerNorm, onto the current
  // device. Same names, shapes and errors as Gpt2Model's constructor.
  Gpt2CudaModel(const Gpt2Config& cfg, const Checkpoint& ckpt, int64_t n_blocks, bool with_ln_f,
                const Gpt2CudaOptions& opt);
  ~Gpt2CudaModel() override;
  Gpt2CudaModel(const Gpt2CudaModel&) = delete;
  Gpt2CudaModel& operator=(const Gpt2CudaModel&) = delete;

  std::string describe() const override;  // the config plus backend and precision
  std::string device() const override { return "cuda"; }
  // As Gpt2Model::forward (host tokens and outputs; synchronous).
  void forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
               const std::vector<float*>& out) const override;

  bool is_full() const override { return int64_t(blocks_.size()) == cfg_.n_layer && has_ln_f_; }
  const float* unembedding() const override { return wte_host_.data(); }
  FinalNorm final_norm() const override {
    return {false, has_ln_f_ ? lnf_w_host_.data() : nullptr, has_ln_f_ ? lnf_b_host_.data() : nullptr};
  }
  // Not on the GPU yet: an internal error (the stats stage uses the CPU model for it).
  void forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                     const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const override;

  // The pass on the device, ordered after `stream`'s earlier work and before its later work,
  // with nothing synchronised: tokens [B,T] and out[h] [N,C] (fp32) are device pointers. Token
  // ids must already be < vocab_size. Thread-safe: passes run one at a time on the model's
  // own stream (its scratch and cuBLASLt workspace are shared by every pass).
  void forward_device(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                      const std::vector<float*>& out, cudaStream_t stream) const;

  // Batches through Gpt2CudaHarvest: batch i+1's pass overlaps batch i's copy back.
  void forward_batches(int64_t n_batches, int64_t max_batch, int64_t T, const std::vector<HookPoint>& hooks,
                       const BatchTokens& fill, const BatchActivations& use) const override;

  const Gpt2CudaOptions& options() const { return opt_; }
  int64_t blocks_loaded() const { return int64_t(blocks_.size()); }
  // Which matmuls ran with a fused epilogue and which fell back (one line per shape).
  std::string gemm_report() const;

 private:
  struct DeviceBlock;
  struct Impl;  // cuBLASLt plans and per-pass scratch (gpt2.cu)

  // The pass itself, on stream s (the model's), the lock held.
  void run_pass(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                const std::vector<float*>& out, cudaStream_t s) const;

  Gpt2CudaOptions opt_;
  bool has_ln_f_ = false;
  std::vector<float> wte_host_, lnf_w_host_, lnf_b_host_;  // for unembedding() and ln_final_*()
  std::vector<std::unique_ptr<DeviceBlock>> blocks_;
  std::unique_ptr<DeviceBlock> embeddings_;  // wte, wpe, ln_f
  std::unique_ptr<Impl> impl_;
};

// config.json + the weights the hooks need, as load_transformer, onto the current device.
std::unique_ptr<Gpt2CudaModel> load_gpt2_cuda(const std::string& model_dir, const std::vector<std::string>& hook_names,
                                              const Gpt2CudaOptions& opt);

// The harvest loop (harvest_loop.hpp) on this model.
class Gpt2CudaHarvest final : public HarvestLoop {
 public:
  Gpt2CudaHarvest(const Gpt2CudaModel& model, std::vector<HookPoint> hooks, int64_t max_batch, int64_t T,
                  int slots = 2);
};

}  // namespace saepipe::cuda
