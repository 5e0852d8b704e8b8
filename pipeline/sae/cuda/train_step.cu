// The training step on one GPU (pipeline/sae/train_step.hpp), the device counterpart of
// train_step.cpp: the parameters, Adam moments and one float64 buffer (step_common.hpp)
//   gradient [P] | fire counts [F] | sum x [D] | sse, active, aux, sum x^2, penalty
// live on the device; per step the rows are copied in, DeviceSae (sae.hpp) accumulates the
// gradient in float64, the buffer is summed over the data group (NCCL with one rank per GPU,
// else MPI through pinned host memory), the gradient is clipped and rounded to float once,
// and the same Adam update runs on every rank. The buffer's tail (F + D + 5 values) comes back
// for the host loop. As on the CPU, float64 sums rounded once make the result independent of
// the number of ranks up to the order of the float64 additions (tested within 1e-5).
//
// Shape legend: E = lead + N + tail rows copied in, N this rank's rows, D d_in, F d_sae,
// P parameters.
#include <cuda_runtime_api.h>

#include <string>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/cuda/gradient_comm.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/cuda/step_common.hpp"
#include "pipeline/sae/cuda/step_kernels.hpp"
#include "pipeline/sae/cuda/train_step.hpp"

namespace saepipe::cuda {
namespace {

class CudaTrainStep final : public DeviceTrainStep {
 public:
  CudaTrainStep(const TrainStepConfig& c, const MpiEnv& env) : DeviceTrainStep(c) {
    make_sae(c.sae, c.d_sae, nullptr);
    if (env.size() > 1) {
      comm_ = make_device_gradient_comm(env, CommBackend::Auto, WireType::Float32);
      sum_over_ranks_ = [&env](int64_t* counts, int64_t n) { env.allreduce_sum(counts, n); };
    }
  }

  ~CudaTrainStep() override { drain(); }

  std::string describe() const override {
    return describe_gemm() + (comm_ ? " over " + comm_->describe() : "") + ")";
  }

  void set_state(const SaeParams& p, const AdamState& a) override { upload_state(p, a); }
  void get_state(SaeParams& p, AdamState& a) const override { download_state(p, &a); }

  const StepTotals& step(const StepBatch& b, const uint8_t* dead, const StepSchedule& s) override {
    // Every rank, also with no rows: batchtopk's threshold is a collective.
    forward_backward(b, dead, s, sum_over_ranks_);
    pack_tail(b, true);
    double* red = reduce_.data();
    if (comm_) {
      comm_->start(red, n_reduce(), stream_);
      comm_->wait(stream_);
    }

    const double* clip = nullptr;
    if (cfg_.grad_clip > 0) {
      squared_norm_partials(red, L_.size(), partial_.data(), stream_);
      clip_factor(partial_.data(), kNormBlocks, cfg_.grad_clip, clip_.data(), stream_);
      clip = clip_.data();
    }
    update(s, clip);
    if (comm_) comm_->wait(nullptr);  // the sum is done (or a dead peer is reported) before we block below
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return fill_totals(tail_host_);
  }

 private:
  std::unique_ptr<GradientComm> comm_;
  SumOverRanks sum_over_ranks_;
};

}  // namespace

std::unique_ptr<TrainStep> make_cuda_train_step(const TrainStepConfig& config, const MpiEnv& data_group) {
  return std::make_unique<CudaTrainStep>(config, data_group);
}

}  // namespace saepipe::cuda
