// The CPU training step (train_step.hpp): forward/backward on this rank's rows (float64 gradient
// of the global-batch loss), one MPI_Allreduce of gradient | fire counts | sum x | metrics, then
// the same clipped Adam step on every rank. Summing float64 partials and rounding once, with the
// encoder computed in globally aligned blocks, makes the weights independent of the number of
// ranks.
//
// Shape legend: N this rank's rows, D d_in, F d_sae, P parameters.
#include "pipeline/sae/train_step.hpp"

#include <algorithm>
#include <cmath>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/resample.hpp"
#include "pipeline/sae/sae_internal.hpp"

namespace saepipe {

namespace {

class CpuTrainStep final : public TrainStep {
 public:
  CpuTrainStep(const TrainStepConfig& c, const MpiEnv& env)
      : cfg_(c), env_(env), params_(c.shape()), unit_norm_(unit_norm_decoder(c.sae.architecture)) {
    cfg_.sae.encoder_block = kTrainEncoderBlock;
    cfg_.sae.encoder_cols = kTrainEncoderCols;
    if (env.size() > 1)
      cfg_.sae.kth_largest = [this](std::vector<float>& cand, int64_t kth) {
        const double t = MPI_Wtime();
        std::vector<float> all = env_.allgather(cand);
        totals_.comm_s += MPI_Wtime() - t;
        totals_.comm_bytes += double(all.size()) * sizeof(float);
        return local_kth_largest(all, kth);
      };
    const int64_t P = params_.size(), F = c.d_sae, O = params_.d_out;
    // One reduction buffer: gradient | fire counts | sum y | [sse, active, aux, sum y^2, penalty].
    reduce_.resize(size_t(P + F + O + 5));
    fire_.resize(size_t(F));
    grad_.resize(size_t(P));
  }

  std::string describe() const override { return "cpu (fp32, float64 gradient sums)"; }

  void set_state(const SaeParams& p, const AdamState& a) override {
    SAE_ASSERT(p.size() == params_.size() && p.d_in == params_.d_in && p.d_sae == params_.d_sae &&
                   p.d_out == params_.d_out && p.gated == params_.gated && p.skip == params_.skip &&
                   p.transcoder == params_.transcoder && p.layers == params_.layers,
               "parameter shapes");
    params_ = p;
    adam_ = a;
  }
  void get_state(SaeParams& p, AdamState& a) const override {
    p = params_;
    a = adam_;
  }

  const StepTotals& step(const StepBatch& b, const uint8_t* dead, const StepSchedule& s) override {
    SAE_ASSERT((b.target != nullptr) == params_.transcoder, "a transcoder, and only a transcoder, has a target batch");
    const int64_t P = params_.size(), D = params_.d_in, O = params_.d_out, F = params_.d_sae;
    const int64_t off_fire = P, off_sumx = P + F, off_scalars = P + F + O, n_reduce = off_scalars + 5;
    const double t0 = MPI_Wtime();
    totals_.comm_s = totals_.comm_bytes = 0;
    std::fill(reduce_.begin(), reduce_.end(), 0.0);
    std::fill(fire_.begin(), fire_.end(), 0);
    cfg_.sae.l1_coef = s.l1_coef;
    cfg_.sae.l0_coef = s.l0_coef;
    // Always called: batchtopk's threshold is a collective, even for a rank with no rows.
    const SaeStepSums sums = sae_forward_backward(params_, cfg_.sae, b.x, b.n, b.global_batch, dead, reduce_.data(),
                                                  fire_.data(), ws_, b.lead, b.tail, b.target);
    const float* y = b.target ? b.target : b.x + b.lead * D;
    const double sum_x2 = sae_detail::add_target_sums(y, b.n, O, reduce_.data() + off_sumx);
    for (int64_t f = 0; f < F; ++f) reduce_[off_fire + f] = double(fire_[f]);
    reduce_[off_scalars + 0] = sums.sum_sq_err;
    reduce_[off_scalars + 1] = sums.sum_active;
    reduce_[off_scalars + 2] = sums.aux_sq_err;
    reduce_[off_scalars + 3] = sum_x2;
    reduce_[off_scalars + 4] = sums.penalty;
    if (env_.size() > 1) {
      const double t = MPI_Wtime();
      env_.allreduce_sum(reduce_.data(), n_reduce);
      totals_.comm_s += MPI_Wtime() - t;
      totals_.comm_bytes += double(n_reduce) * sizeof(double);
    }

    double clip = 1.0;
    if (cfg_.grad_clip > 0) {
      double ss = 0;
      for (int64_t i = 0; i < P; ++i) ss += reduce_[i] * reduce_[i];
      const double norm = std::sqrt(ss);
      if (norm > cfg_.grad_clip) clip = cfg_.grad_clip / norm;
    }
    // Element by element, so the threads change nothing.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < P; ++i) grad_[i] = float(reduce_[i] * clip);
    AdamConfig adam = cfg_.adam;
    adam.lr = s.lr;
    sae_apply_gradient(params_, grad_, adam_, adam, unit_norm_);

    totals_.sum_sq_err = reduce_[off_scalars + 0];
    totals_.active = reduce_[off_scalars + 1];
    totals_.aux_sq_err = reduce_[off_scalars + 2];
    totals_.sum_x2 = reduce_[off_scalars + 3];
    totals_.penalty = reduce_[off_scalars + 4];
    totals_.sum_x = reduce_.data() + off_sumx;
    totals_.fire = reduce_.data() + off_fire;
    totals_.batch_threshold = batch_selection(cfg_.sae.architecture) ? ws_.batch_threshold : 0.0f;
    totals_.step_s = MPI_Wtime() - t0;
    return totals_;
  }

  std::vector<float> row_errors(const StepBatch& b) const override {
    return row_squared_errors(ws_.recon.data(), b.target ? b.target : b.x + b.lead * params_.d_in, b.n,
                              params_.d_out);
  }

 private:
  TrainStepConfig cfg_;
  const MpiEnv& env_;
  SaeParams params_;
  AdamState adam_;
  const bool unit_norm_;
  SaeWorkspace ws_;
  std::vector<double> reduce_;
  std::vector<int64_t> fire_;
  std::vector<float> grad_;
  StepTotals totals_;
};

}  // namespace

void TrainStep::resample(const std::vector<int32_t>& latents, const std::vector<double>& rows,
                         const std::vector<uint8_t>& dead) {
  SaeParams params;
  AdamState adam;
  get_state(params, adam);
  const std::vector<float> inputs = resample_inputs(rows, params.b_dec(), params.d_in);
  resample_latents(params, adam, latents, inputs.data(), dead);
  set_state(params, adam);
}

std::vector<float> resample_inputs(const std::vector<double>& rows, const float* b_dec, int64_t D) {
  std::vector<float> inputs(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) inputs[i] = float(rows[i] - double(b_dec[i % size_t(D)]));
  return inputs;
}

std::vector<float> row_squared_errors(const float* recon, const float* x, int64_t n_rows, int64_t D) {
  std::vector<float> err(static_cast<size_t>(n_rows));
  for (int64_t n = 0; n < n_rows; ++n) {
    double e2 = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double e = double(recon[n * D + d]) - double(x[n * D + d]);
      e2 += e * e;
    }
    err[n] = float(e2);
  }
  return err;
}

std::unique_ptr<TrainStep> make_cpu_train_step(const TrainStepConfig& config, const MpiEnv& data_group) {
  return std::make_unique<CpuTrainStep>(config, data_group);
}

}  // namespace saepipe
