// The harvest's loop on the GPU, for any model with a device pass (the CUDA GPT-2, the CUDA
// decoder): batch i runs in slot i % slots; its hooked activations are copied to pinned host
// memory on a second stream while batch i+1 computes.
//
//   HarvestLoop h(pass, D, V, hooks, max_B, T);
//   h.submit(0, tokens0, B);                    // returns at once
//   for (i = 1; ...) { h.submit(i % 2, tokens_i, B); use(h.wait((i - 1) % 2)); }
//
// A slot may be submitted again only after wait() on it returned and its pointers were used.
// forward_batches_overlapped runs that pattern behind TransformerModel::forward_batches.
//
// Shape legend: B sequences, T positions, N = B*T rows, D d_model, V vocab.
#pragma once
#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <vector>

#include "pipeline/model/transformer.hpp"

namespace saepipe::cuda {

// A model's pass on the device, ordered on `stream` (tokens [B,T] and out[h] [N,D] on the device).
using DevicePass = std::function<void(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                                      const std::vector<float*>& out, cudaStream_t stream)>;

class HarvestLoop {
 public:
  HarvestLoop(DevicePass pass, int64_t d_model, int64_t vocab_size, std::vector<HookPoint> hooks, int64_t max_batch,
              int64_t T, int slots = 2);
  ~HarvestLoop();
  HarvestLoop(const HarvestLoop&) = delete;
  HarvestLoop& operator=(const HarvestLoop&) = delete;

  int slots() const { return int(slot_.size()); }
  // Copies tokens [B,T] (host; checked against the vocabulary) and enqueues the pass.
  void submit(int slot, const int32_t* tokens, int64_t B);
  // Blocks until the slot's activations are on the host: per hook, [B*T, D] fp32 (pinned).
  const std::vector<float*>& wait(int slot);
  // Seconds the GPU spent on the slot's last pass (CUDA events; valid after wait()).
  double last_pass_seconds(int slot) const;

 private:
  struct Slot;
  DevicePass pass_;
  int64_t D_, V_;
  std::vector<HookPoint> hooks_;
  int64_t max_batch_, T_;
  cudaStream_t compute_ = nullptr, copy_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slot_;
};

// TransformerModel::forward_batches through a HarvestLoop of two slots.
void forward_batches_overlapped(const DevicePass& pass, int64_t d_model, int64_t vocab_size, int64_t n_batches,
                                int64_t max_batch, int64_t T, const std::vector<HookPoint>& hooks,
                                const TransformerModel::BatchTokens& fill, const TransformerModel::BatchActivations& use);

}  // namespace saepipe::cuda
