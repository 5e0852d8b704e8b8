// What the CUDA training steps (train_step.cu, and train_step_sharded.cu for a latent shard)
// share around their DeviceSae: the stream, the parameters and Adam moments on the device with
// their copies to and from the host, and one float64 buffer
//   gradient [P] | fire counts [Fs] | sum x [D] | sse, active, aux, sum x^2, penalty
// with the parts of a step that do not depend on the grid: the batch in and forward_backward,
// the input sums and the counters packed into the buffer, the Adam update, the buffer's tail
// back to pinned host memory and the totals read from it. What each step sums, and over which
// ranks, stays in its own file.
//
// Shape legend: E = lead + N + tail rows copied in, N this rank's rows, D d_in, F d_sae (every
// shard's latents: the dead mask), Fs the latents held here (F unsharded), P = SaeLayout{D,
// Fs}.size() the parameters held here.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/sae/cuda/sae.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe::cuda {

class DeviceTrainStep : public TrainStep {
 public:
  ~DeviceTrainStep() override;  // drains the stream before anything is freed
  // The last forward_backward's per-row squared errors [N].
  std::vector<float> row_errors(const StepBatch& b) const override;

 protected:
  explicit DeviceTrainStep(const TrainStepConfig& c);  // creates the stream
  // The DeviceSae of Fs = `latents` latents (the encoder on the training step's aligned
  // blocks; `shard` nullable, outliving this step) and every buffer sized for it.
  void make_sae(SaeConfig sae, int64_t latents, const DeviceLatentShard* shard);
  // Waits for the stream: a step's destructor calls it before its own members (communicators)
  // go, as the stream may still use them after an exception.
  void drain() noexcept {
    if (stream_) cudaStreamSynchronize(stream_);
  }
  // "cuda (<precision> encoder GEMM, float64 gradient sums", for describe().
  std::string describe_gemm() const;

  // The parameters and moments held here, in SaeParams' layout (shape D x Fs), in and out;
  // empty moments start at zero. Both return once the copies are done.
  void upload_state(const SaeParams& p, const AdamState& a);
  void download_state(SaeParams& p, AdamState* a) const;

  // A step's first part: the E rows and the dead mask [F] in, the buffer, counters and sums
  // zeroed, forward_backward into them (a collective where sum_over_ranks is, so every rank
  // calls it, also with N = 0).
  void forward_backward(const StepBatch& b, const uint8_t* dead, const StepSchedule& s,
                        const SumOverRanks& sum_over_ranks);
  // Sum x and sum x^2 of the N own rows into the buffer when `count_inputs`, then the fire
  // counts and DeviceSae's sums.
  void pack_tail(const StepBatch& b, bool count_inputs);
  // After the buffer is summed: the gradient rounded to float (times *clip, null: 1), the Adam
  // update, the tail [Fs + D + 5] queued for the host (tail_host_: read after a synchronise).
  void update(const StepSchedule& s, const double* clip);
  // totals_ from tail_host_, with `fire` [F] as the fire counts.
  const StepTotals& fill_totals(const double* fire);

  // Offsets into reduce_.
  int64_t off_fire() const { return L_.size(); }
  int64_t off_sum_x() const { return L_.size() + L_.F; }
  int64_t off_scalars() const { return L_.size() + L_.F + L_.D; }
  int64_t n_reduce() const { return off_scalars() + 5; }

  template <class T>
  void copy_in(T* dev, const T* host, int64_t n, cudaStream_t stream = nullptr) const {
    if (n > 0)
      SAE_CUDA_CHECK(
          cudaMemcpyAsync(dev, host, sizeof(T) * size_t(n), cudaMemcpyHostToDevice, stream ? stream : stream_));
  }
  template <class T>
  void copy_out(T* host, const T* dev, int64_t n, cudaStream_t stream = nullptr) const {
    if (n > 0)
      SAE_CUDA_CHECK(
          cudaMemcpyAsync(host, dev, sizeof(T) * size_t(n), cudaMemcpyDeviceToHost, stream ? stream : stream_));
  }

  TrainStepConfig cfg_;
  const bool unit_norm_;
  cudaStream_t stream_ = nullptr;
  Blas blas_;
  std::unique_ptr<DeviceSae> sae_;
  SaeLayout L_;  // what is held here: D, Fs
  DeviceBuffer<float> params_, m_, v_, grad_, x_;
  int64_t t_ = 0;
  DeviceBuffer<double> reduce_, sums_, clip_, partial_, row_sq_;
  DeviceBuffer<unsigned long long> fire_;
  DeviceBuffer<uint8_t> dead_;   // [F]
  double* tail_host_ = nullptr;  // pinned [Fs + D + 5]
  StepTotals totals_;
};

}  // namespace saepipe::cuda
