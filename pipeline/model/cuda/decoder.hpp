// The generic decoder on one GPU: the device counterpart of DecoderModel (pipeline/model/
// decoder.hpp), every family from the same DecoderConfig, behind the TransformerModel
// interface. The weights are those the CPU model prepares (loaded through its WeightSource,
// fused and transposed once), uploaded when the model is built; the token embeddings go up as
// one fp32 table.
//
//   matmuls    cuBLASLt, inputs in the activation type (fp32 / bf16 / fp16), fp32 output and
//              accumulation (FP32: plain fp32, no TF32, for parity with the CPU to ~1e-5);
//              biases added by a separate kernel.
//   the rest   decoder_kernels.hpp, fp32 arithmetic; residual stream and hooks in fp32.
// The pass stops after the last block a hook needs. A model built from a full CPU model (every
// block, the final norm, the unembedding: load_transformer_full_cuda) also runs forward_final on
// the GPU, for stats' CE splicing; the edits are host functions, so each edit's activation makes
// a round trip through host memory. Passes run one at a time, on the model's own stream.
//
// Shape legend: B sequences, T positions, N = B*T rows, D d_model, Q query width, KV key/value
// width, I MLP width, V vocab.
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/gpt2_kernels.hpp"  // ActType
#include "pipeline/model/decoder.hpp"

namespace saepipe::cuda {

class DecoderCudaModel final : public TransformerModel {
 public:
  // Uploads the blocks `cpu` holds (its weights source must stay readable: the embedding table
  // is read through it) with matmul inputs in `precision`.
  DecoderCudaModel(const DecoderModel& cpu, ActType precision);
  // The same from a full model (is_full()), kept for its host unembedding and final norm, which
  // the logits (unembed.hpp, logit_effects.hpp) read on the host.
  DecoderCudaModel(std::unique_ptr<const DecoderModel> full, ActType precision);
  ~DecoderCudaModel() override;
  DecoderCudaModel(const DecoderCudaModel&) = delete;
  DecoderCudaModel& operator=(const DecoderCudaModel&) = delete;

  std::string family() const override { return cfg_.model_type; }
  std::string device() const override { return "cuda"; }
  int64_t d_model() const override { return cfg_.d_model; }
  int64_t n_layers() const override { return cfg_.n_layers; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t n_positions() const override { return cfg_.n_positions; }
  int64_t bos_token() const override { return cfg_.bos_token; }
  int64_t eos_token() const override { return cfg_.eos_token; }
  std::string describe() const override;  // the config plus backend and precision
  HookPoint hook(const std::string& name) const override { return decoder_hook(cfg_, name); }

  // As DecoderModel::forward (host tokens and outputs; synchronous).
  void forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
               const std::vector<float*>& out) const override;
  // The pass, ordered after `stream`'s earlier work and before its later work: tokens [B,T]
  // (ids < vocab_size) and out[h] [N,D] fp32 are device pointers; nothing is synchronised.
  // Thread-safe: every pass runs on the model's own stream, which holds the shared scratch and
  // cuBLASLt workspace, so passes asked for on different streams never overlap.
  void forward_device(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                      const std::vector<float*>& out, cudaStream_t stream) const;
  // Batches through HarvestLoop (harvest_loop.hpp): batch i+1's pass overlaps batch i's copy back.
  void forward_batches(int64_t n_batches, int64_t max_batch, int64_t T, const std::vector<HookPoint>& hooks,
                       const BatchTokens& fill, const BatchActivations& use) const override;

  bool is_full() const override { return host_ != nullptr; }
  const float* unembedding() const override { return host_ ? host_->unembedding() : nullptr; }
  FinalNorm final_norm() const override { return host_ ? host_->final_norm() : FinalNorm{}; }
  float final_logit_softcap() const override { return float(cfg_.final_softcap); }
  // As DecoderModel::forward_final, step for step on the GPU (host tokens and outputs).
  void forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                     const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const override;

 private:
  struct Impl;  // device weights, cuBLASLt plans, scratch (decoder.cu)
  // The pass itself, on the model's stream, the lock held.
  void run_pass(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                const std::vector<float*>& out) const;
  DecoderConfig cfg_;
  ActType precision_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<const DecoderModel> host_;  // full models only
};

// The weights the hooks need, as load_transformer (a Hugging Face directory or a GGUF file),
// onto the current device.
std::unique_ptr<DecoderCudaModel> load_transformer_cuda(const std::string& model_dir,
                                                        const std::vector<std::string>& hook_names, ActType precision);
// The whole model, as load_transformer_full, onto the current device (forward_final on the GPU).
std::unique_ptr<DecoderCudaModel> load_transformer_full_cuda(const std::string& model_dir, ActType precision);

}  // namespace saepipe::cuda
