// The parts the CUDA training steps share (step_common.hpp).
#include "pipeline/sae/cuda/step_common.hpp"

#include "pipeline/sae/cuda/step_kernels.hpp"

namespace saepipe::cuda {

DeviceTrainStep::DeviceTrainStep(const TrainStepConfig& c)
    : cfg_(c), unit_norm_(unit_norm_decoder(c.sae.architecture)) {
  SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

DeviceTrainStep::~DeviceTrainStep() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (tail_host_) cudaFreeHost(tail_host_);
  if (stream_) cudaStreamDestroy(stream_);
}

void DeviceTrainStep::make_sae(SaeConfig sae, int64_t latents, const DeviceLatentShard* shard) {
  sae.encoder_block = kTrainEncoderBlock;  // globally aligned blocks, as the CPU step
  sae_ = std::make_unique<DeviceSae>(cfg_.d_in, latents, sae, gemm_precision(cfg_.precision), shard);
  L_ = sae_->layout();
  const int64_t P = L_.size();
  params_.resize(P), m_.resize(P), v_.resize(P), grad_.resize(P);
  reduce_.resize(n_reduce());
  fire_.resize(L_.F);
  dead_.resize(cfg_.d_sae);
  sums_.resize(kStepSums);
  clip_.resize(1);
  partial_.resize(kNormBlocks);
  SAE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&tail_host_), sizeof(double) * size_t(L_.F + L_.D + 5)));
}

std::string DeviceTrainStep::describe_gemm() const {
  return std::string("cuda (") + to_string(gemm_precision(cfg_.precision)) + " encoder GEMM, float64 gradient sums";
}

void DeviceTrainStep::upload_state(const SaeParams& p, const AdamState& a) {
  const int64_t P = L_.size();
  SAE_ASSERT(p.d_in == L_.D && p.d_sae == L_.F && p.size() == P, "parameter shapes");
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

void DeviceTrainStep::download_state(SaeParams& p, AdamState* a) const {
  const int64_t P = L_.size();
  p = SaeParams(L_.D, L_.F);
  copy_out(p.data.data(), params_.data(), P);
  if (a != nullptr) {
    a->m.resize(size_t(P));
    a->v.resize(size_t(P));
    copy_out(a->m.data(), m_.data(), P);
    copy_out(a->v.data(), v_.data(), P);
    a->t = t_;
  }
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void DeviceTrainStep::forward_backward(const StepBatch& b, const uint8_t* dead, const StepSchedule& s,
                                       const SumOverRanks& sum_over_ranks) {
  SAE_ASSERT(b.target == nullptr, "a separate target batch is not implemented");
  const int64_t D = L_.D, F = cfg_.d_sae, E = b.lead + b.n + b.tail;
  if (x_.size() < E * D) x_.resize(E * D);
  copy_in(x_.data(), b.x, E * D);
  int64_t n_dead = 0;  // over every shard's latents: AuxK's width is the group's
  for (int64_t f = 0; f < F; ++f) n_dead += dead[f] != 0;
  copy_in(dead_.data(), dead, F);
  reduce_.zero(stream_);
  fire_.zero(stream_);
  sums_.zero(stream_);
  sae_->config().l1_coef = s.l1_coef;
  sae_->config().l0_coef = s.l0_coef;
  sae_->forward_backward(params_.data(), x_.data(), b.lead, b.n, b.tail, b.global_batch, dead_.data(), n_dead,
                         reduce_.data(), fire_.data(), sums_.data(), sum_over_ranks, blas_, stream_);
}

void DeviceTrainStep::pack_tail(const StepBatch& b, bool count_inputs) {
  double* red = reduce_.data();
  if (count_inputs && b.n > 0) {
    const float* x_own = x_.data() + b.lead * L_.D;
    weighted_column_sums(nullptr, x_own, b.n, L_.D, 1.0, red + off_sum_x(), stream_);
    if (row_sq_.size() < b.n) row_sq_.resize(b.n);
    sum_of_squares(x_own, b.n, L_.D, row_sq_.data(), red + off_scalars() + 3, stream_);
  }
  pack_step_tail(fire_.data(), L_.F, sums_.data(), red + off_fire(), red + off_scalars(), stream_);
}

void DeviceTrainStep::update(const StepSchedule& s, const double* clip) {
  to_float_scaled(reduce_.data(), L_.size(), clip, grad_.data(), stream_);
  sae_apply_adam(L_, params_.data(), grad_.data(), m_.data(), v_.data(), ++t_, s.lr,
                 s.lr * cfg_.adam.threshold_lr_scale, cfg_.adam.beta1, cfg_.adam.beta2, cfg_.adam.eps, unit_norm_,
                 stream_);
  SAE_CUDA_CHECK(cudaMemcpyAsync(tail_host_, reduce_.data() + off_fire(), sizeof(double) * size_t(L_.F + L_.D + 5),
                                 cudaMemcpyDeviceToHost, stream_));
}

const StepTotals& DeviceTrainStep::fill_totals(const double* fire) {
  const double* scalars = tail_host_ + L_.F + L_.D;
  totals_.sum_sq_err = scalars[0];
  totals_.active = scalars[1];
  totals_.aux_sq_err = scalars[2];
  totals_.sum_x2 = scalars[3];
  totals_.penalty = scalars[4];
  totals_.fire = fire;
  totals_.sum_x = tail_host_ + L_.F;
  totals_.batch_threshold = cfg_.sae.architecture == Architecture::BatchTopK ? sae_->batch_threshold() : 0.0f;
  return totals_;
}

std::vector<float> DeviceTrainStep::row_errors(const StepBatch& b) const {
  std::vector<double> sq(static_cast<size_t>(b.n));
  copy_out(sq.data(), sae_->row_sq(), b.n);
  SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return std::vector<float>(sq.begin(), sq.end());
}

}  // namespace saepipe::cuda
