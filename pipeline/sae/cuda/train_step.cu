// The training step on one GPU (pipeline/sae/train_step.hpp), the device counterpart of
// train_step.cpp: the parameters, Adam moments and one float64 buffer
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

#include <cstring>
#include <string>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/cuda/gradient_comm.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/cuda/sae.hpp"
#include "pipeline/sae/cuda/step_kernels.hpp"
#include "pipeline/sae/cuda/train_step.hpp"

namespace saepipe::cuda {
namespace {

class CudaTrainStep final : public TrainStep {
 public:
  CudaTrainStep(const TrainStepConfig& c, const MpiEnv& env)
      : cfg_(c), env_(env), unit_norm_(unit_norm_decoder(c.sae.architecture)),
        sae_(c.d_in, c.d_sae, with_block(c.sae), gemm_precision(c.precision)) {
    L_ = sae_.layout();
    const int64_t P = L_.size(), F = L_.F, D = L_.D;
    SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    params_.resize(P), m_.resize(P), v_.resize(P), grad_.resize(P);
    reduce_.resize(P + F + D + 5);
    fire_.resize(F);
    dead_.resize(F);
    sums_.resize(kStepSums);
    clip_.resize(1);
    partial_.resize(kNormBlocks);
    SAE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&tail_host_), sizeof(double) * size_t(F + D + 5)));
    if (env.size() > 1) {
      comm_ = make_device_gradient_comm(env, CommBackend::Auto, WireType::Float32);
      sum_over_ranks_ = [&env](int64_t* counts, int64_t n) { env.allreduce_sum(counts, n); };
    }
  }
  ~CudaTrainStep() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (tail_host_) cudaFreeHost(tail_host_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string describe() const override {
    return std::string("cuda (") + to_string(gemm_precision(cfg_.precision)) +
           " encoder GEMM, float64 gradient sums" + (comm_ ? " over " + comm_->describe() : "") + ")";
  }

  void set_state(const SaeParams& p, const AdamState& a) override {
    const int64_t P = L_.size();
    SAE_ASSERT(p.d_in == L_.D && p.d_sae == L_.F, "parameter shapes");
    copy_in(params_.data(), p.data.data(), P);
    if (a.m.empty()) {
      SAE_CUDA_CHECK(cudaMemsetAsync(m_.data(), 0, sizeof(float) * size_t(P), stream_));
      SAE_CUDA_CHECK(cudaMemsetAsync(v_.data(), 0, sizeof(float) * size_t(P), stream_));
    } else {
      SAE_ASSERT(int64_t(a.m.size()) == P && int64_t(a.v.size()) == P, "Adam moments do not match the parameters");
      copy_in(m_.data(), a.m.data(), P);
      copy_in(v_.data(), a.v.data(), P);
    }
    t_ = a.t;
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void get_state(SaeParams& p, AdamState& a) const override {
    const int64_t P = L_.size();
    p = SaeParams(L_.D, L_.F);
    a.m.resize(size_t(P));
    a.v.resize(size_t(P));
    copy_out(p.data.data(), params_.data(), P);
    copy_out(a.m.data(), m_.data(), P);
    copy_out(a.v.data(), v_.data(), P);
    a.t = t_;
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  const StepTotals& step(const StepBatch& b, const uint8_t* dead, const StepSchedule& s) override {
    SAE_ASSERT(b.target == nullptr, "a separate target batch is not implemented");
    const int64_t P = L_.size(), F = L_.F, D = L_.D, E = b.lead + b.n + b.tail;
    const int64_t off_fire = P, off_sumx = P + F, off_scalars = P + F + D, n_reduce = off_scalars + 5;
    if (x_.size() < E * D) x_.resize(E * D);
    copy_in(x_.data(), b.x, E * D);
    int64_t n_dead = 0;
    for (int64_t f = 0; f < F; ++f) n_dead += dead[f] != 0;
    copy_in(dead_.data(), dead, F);
    reduce_.zero(stream_);
    fire_.zero(stream_);
    sums_.zero(stream_);
    sae_.config().l1_coef = s.l1_coef;
    sae_.config().l0_coef = s.l0_coef;
    // Every rank, also with no rows: batchtopk's threshold is a collective.
    sae_.forward_backward(params_.data(), x_.data(), b.lead, b.n, b.tail, b.global_batch, dead_.data(), n_dead,
                          reduce_.data(), fire_.data(), sums_.data(), sum_over_ranks_, blas_, stream_);
    double* red = reduce_.data();
    if (b.n > 0) {
      const float* x_own = x_.data() + b.lead * D;
      weighted_column_sums(nullptr, x_own, b.n, D, 1.0, red + off_sumx, stream_);
      if (row_sq_.size() < b.n) row_sq_.resize(b.n);
      sum_of_squares(x_own, b.n, D, row_sq_.data(), red + off_scalars + 3, stream_);
    }
    pack_step_tail(fire_.data(), F, sums_.data(), red + off_fire, red + off_scalars, stream_);
    if (comm_) {
      comm_->start(red, n_reduce, stream_);
      comm_->wait(stream_);
    }

    const double* clip = nullptr;
    if (cfg_.grad_clip > 0) {
      squared_norm_partials(red, P, partial_.data(), stream_);
      clip_factor(partial_.data(), kNormBlocks, cfg_.grad_clip, clip_.data(), stream_);
      clip = clip_.data();
    }
    to_float_scaled(red, P, clip, grad_.data(), stream_);
    sae_apply_adam(L_, params_.data(), grad_.data(), m_.data(), v_.data(), ++t_, s.lr, cfg_.adam.beta1,
                   cfg_.adam.beta2, cfg_.adam.eps, unit_norm_, stream_);
    SAE_CUDA_CHECK(cudaMemcpyAsync(tail_host_, red + off_fire, sizeof(double) * size_t(F + D + 5),
                                   cudaMemcpyDeviceToHost, stream_));
    if (comm_) comm_->wait(nullptr);  // the sum is done (or a dead peer is reported) before we block below
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));

    const double* scalars = tail_host_ + F + D;
    totals_.sum_sq_err = scalars[0];
    totals_.active = scalars[1];
    totals_.aux_sq_err = scalars[2];
    totals_.sum_x2 = scalars[3];
    totals_.penalty = scalars[4];
    totals_.fire = tail_host_;
    totals_.sum_x = tail_host_ + F;
    totals_.batch_threshold = cfg_.sae.architecture == Architecture::BatchTopK ? sae_.batch_threshold() : 0.0f;
    return totals_;
  }

  std::vector<float> row_errors(const StepBatch& b) const override {
    std::vector<double> sq(static_cast<size_t>(b.n));
    copy_out(sq.data(), sae_.row_sq(), b.n);
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return std::vector<float>(sq.begin(), sq.end());
  }

 private:
  static SaeConfig with_block(SaeConfig c) {
    c.encoder_block = kTrainEncoderBlock;  // globally aligned blocks, as the CPU step
    return c;
  }
  template <class T>
  void copy_in(T* dev, const T* host, int64_t n) const {
    if (n > 0) SAE_CUDA_CHECK(cudaMemcpyAsync(dev, host, sizeof(T) * size_t(n), cudaMemcpyHostToDevice, stream_));
  }
  template <class T>
  void copy_out(T* host, const T* dev, int64_t n) const {
    if (n > 0) SAE_CUDA_CHECK(cudaMemcpyAsync(host, dev, sizeof(T) * size_t(n), cudaMemcpyDeviceToHost, stream_));
  }

  TrainStepConfig cfg_;
  const MpiEnv& env_;
  const bool unit_norm_;
  cudaStream_t stream_ = nullptr;
  Blas blas_;
  DeviceSae sae_;
  SaeLayout L_;
  DeviceBuffer<float> params_, m_, v_, grad_, x_;
  int64_t t_ = 0;
  DeviceBuffer<double> reduce_, sums_, clip_, partial_, row_sq_;
  DeviceBuffer<unsigned long long> fire_;
  DeviceBuffer<uint8_t> dead_;
  double* tail_host_ = nullptr;  // pinned [F + D + 5]
  std::unique_ptr<GradientComm> comm_;
  SumOverRanks sum_over_ranks_;
  StepTotals totals_;
};

}  // namespace

std::unique_ptr<TrainStep> make_cuda_train_step(const TrainStepConfig& config, const MpiEnv& data_group) {
  return std::make_unique<CudaTrainStep>(config, data_group);
}

}  // namespace saepipe::cuda
