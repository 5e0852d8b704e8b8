// The CPU training step of one latent shard (train_step.hpp; the grid: latent_grid.hpp).
// This rank holds latents [first, first + Fs) of W_enc, b_enc, W_dec, the thresholds (gated:
// r_mag, b_mag) and their Adam moments, and all of b_dec (and a skip transcoder's W_skip). A step:
//   1. pre-activations of its latents on its data group's rows (the encoder's aligned blocks
//      as unsharded); topk / AuxK: every shard offers its best per row and the shard group
//      keeps the global best (merge_top below; ties to the lower latent, as topk_rows);
//      batchtopk / matryoshka: the threshold from every rank's candidates; relu / jumprelu /
//      gated: local;
//   2. the reconstruction summed over the shard group (sum_rows), so g = dLoss/dx_hat is the
//      unsharded one on every shard (matryoshka: each prefix's, gated: the gate path's too);
//      backward of its own latents; a transcoder reconstructs its target, a crosscoder its
//      layers side by side (the decoder rows hold every layer: nothing else changes);
//   3. float64 sums: this shard's gradient, fire counts and metrics over its data groups
//      (ranks with the same latents), then the shared parameters' gradients (b_dec, W_skip), the
//      metrics and the squared gradient norm over the shard group; every rank clips by the global
//      norm and applies the same Adam update to its latents (the shared ones alike on every rank).
// The pre-activations are bit-identical to the unsharded step's (the same encoder blocks:
// kTrainEncoderCols), so the selections are too; the weights equal the unsharded ones up to
// float64 rounding: the reconstruction and the gradients are float64 sums (in another order)
// rounded once to float.
//
// Shape legend: N this rank's rows, D d_in, O d_out, F d_sae (all shards), Fs = F / S this shard's
// latents, K a selection's width, P_s this shard's parameters (SaeParams::size_for of its part).
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "pipeline/core/comm_meter.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/latent_shard_merge.hpp"
#include "pipeline/sae/latent_shard_state.hpp"
#include "pipeline/sae/sae_internal.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe {

namespace {

class CpuShardedTrainStep final : public TrainStep {
 public:
  CpuShardedTrainStep(const TrainStepConfig& c, const LatentGrid& grid)
      : cfg_(c), grid_(grid), S_(grid.shards()), F_(c.d_sae), Fs_(c.d_sae / grid.shards()),
        first_(int64_t(grid.shard()) * Fs_), shape_(c.shape()), params_(part_shape(range())),
        unit_norm_(unit_norm_decoder(c.sae.architecture)) {
    SAE_ASSERT(c.d_sae % S_ == 0, "latent shards must divide d_sae (checked with the job)");
    SAE_ASSERT(Fs_ % kTrainEncoderCols == 0, "a latent shard holds whole encoder blocks (checked by the train stage)");
    cfg_.sae.encoder_block = kTrainEncoderBlock;
    cfg_.sae.encoder_cols = kTrainEncoderCols;
    shard_.first = first_;
    shard_.total = F_;
    shard_.lead = grid.shard() == 0;
    shard_.merge_top = [this](const int32_t* ii, const float* vi, int64_t N, int64_t W, int64_t K, int32_t* io,
                              float* vo) { merge_top(ii, vi, N, W, K, io, vo); };
    shard_.sum_rows = [this](double* rows, int64_t N, int64_t D) {
      meter_.timed(double(N * D) * sizeof(double), [&] { grid_.shard_group().allreduce_sum(rows, N * D); });
    };
    cfg_.sae.shard = &shard_;
    // batchtopk: one threshold over the whole global batch and every latent, so every rank.
    if (grid.world().size() > 1)
      cfg_.sae.kth_largest = [this](std::vector<float>& cand, int64_t kth) {
        std::vector<float> all;
        meter_.timed(0, [&] { all = grid_.world().allgather(cand); });
        meter_.bytes += double(all.size()) * sizeof(float);
        return local_kth_largest(all, kth);
      };
    const int64_t P = params_.size(), O = params_.d_out;
    for (const LatentSegment& g : shared_segments(range())) n_shared_ += g.row;
    reduce_.resize(size_t(P + Fs_ + O + 5));   // gradient | fire counts | sum y | 5 scalars
    group_.resize(size_t(n_shared_ + O + 6));  // g b_dec (| g W_skip) | sum y | 5 scalars | squared norm
    fire_.resize(size_t(Fs_));
    fire_all_.resize(size_t(F_));
    grad_.resize(size_t(P));
  }

  std::string describe() const override {
    return "cpu (fp32, float64 gradient sums), latents " + std::to_string(first_) + ".." +
           std::to_string(first_ + Fs_ - 1) + " of " + std::to_string(F_) + " on a grid of " + grid_.describe();
  }

  void set_state(const SaeParams& p, const AdamState& a) override {
    SAE_ASSERT(p.d_in == params_.d_in && p.d_sae == F_ && p.size() == SaeParams::size_for(whole_shape(range())),
               "parameter shapes");
    take_latent_state(range(), p, a, params_, adam_);
  }

  void get_state(SaeParams& p, AdamState& a) const override {
    gather_latent_state(grid_.shard_group(), range(), params_, adam_, p, a);
  }

  void get_local_state(SaeParams& p, AdamState* a) const override {
    p = params_;
    if (a != nullptr) *a = adam_;
  }

  void visit_local_state(const std::function<void(const SaeParams&, const AdamState&)>& fn) const override {
    fn(params_, adam_);
  }

  void set_local_state(const SaeParams& p, const AdamState& a) override {
    SAE_ASSERT(p.d_in == params_.d_in && p.d_sae == Fs_ && p.size() == params_.size() && p.gated == params_.gated &&
                   p.skip == params_.skip && p.d_out == params_.d_out,
               "the shard's parameter shapes");
    SAE_ASSERT(a.m.empty() || (a.m.size() == p.data.size() && a.v.size() == p.data.size()), "the shard's Adam moments");
    params_.data = p.data;
    adam_ = a;
  }

  void gather_params(SaeParams& p) const override {
    const bool root = grid_.shard_group().is_root();
    p = root ? SaeParams(whole_shape(range())) : SaeParams();
    gather_latent_range_to_root(grid_.shard_group(), range(), params_.data, p.data);
  }

  const StepTotals& step(const StepBatch& b, const uint8_t* dead, const StepSchedule& s) override {
    SAE_ASSERT((b.target != nullptr) == params_.transcoder, "a transcoder, and only a transcoder, has a target batch");
    const double t0 = MPI_Wtime();
    meter_ = {};
    const int64_t P = params_.size(), D = params_.d_in, O = params_.d_out, Fs = Fs_, H = n_shared_;
    const int64_t off_fire = P, off_sumx = P + Fs, off_scalars = P + Fs + O, n_reduce = off_scalars + 5;
    std::fill(reduce_.begin(), reduce_.end(), 0.0);
    std::fill(fire_.begin(), fire_.end(), 0);
    cfg_.sae.l1_coef = s.l1_coef;
    cfg_.sae.l0_coef = s.l0_coef;
    // Collective over the shard group and, for batchtopk, every rank: called also with no rows.
    const SaeStepSums sums = sae_forward_backward(params_, cfg_.sae, b.x, b.n, b.global_batch, dead, reduce_.data(),
                                                  fire_.data(), ws_, b.lead, b.tail, b.target);
    double sum_x2 = 0;
    if (shard_.lead) {  // the shard group's rows are the same: one shard counts them
      const float* y = b.target ? b.target : b.x + b.lead * D;
      sum_x2 = sae_detail::add_target_sums(y, b.n, O, reduce_.data() + off_sumx);
    }
    for (int64_t f = 0; f < Fs; ++f) reduce_[off_fire + f] = double(fire_[f]);
    reduce_[off_scalars + 0] = sums.sum_sq_err;
    reduce_[off_scalars + 1] = sums.sum_active;
    reduce_[off_scalars + 2] = sums.aux_sq_err;
    reduce_[off_scalars + 3] = sum_x2;
    reduce_[off_scalars + 4] = sums.penalty;
    if (grid_.data_groups() > 1)
      meter_.timed(double(n_reduce) * sizeof(double),
                   [&] { grid_.data_group().allreduce_sum(reduce_.data(), n_reduce); });

    // The shard group: the shared parameters' gradients (b_dec: the lead's reconstruction term
    // plus every shard's encoder term; W_skip: the lead's), sum y and the scalars (the lead's and
    // every shard's own), and the squared norm of the shard's own gradient for clipping.
    const std::vector<LatentSegment> shared = shared_segments(range());
    double own_sq = 0;
    if (cfg_.grad_clip > 0) {  // the gradient outside the shared segments (in increasing offset)
      int64_t i = 0;
      for (const LatentSegment& g : shared) {
        for (; i < g.shard_off; ++i) own_sq += reduce_[i] * reduce_[i];
        i = g.shard_off + g.row;
      }
      for (; i < P; ++i) own_sq += reduce_[i] * reduce_[i];
    }
    int64_t at = 0;
    for (const LatentSegment& g : shared) {
      std::copy(reduce_.begin() + g.shard_off, reduce_.begin() + g.shard_off + g.row, group_.begin() + at);
      at += g.row;
    }
    std::copy(reduce_.begin() + off_sumx, reduce_.begin() + off_sumx + O + 5, group_.begin() + H);
    group_[H + O + 5] = own_sq;
    meter_.timed(double(group_.size()) * sizeof(double),
                 [&] { grid_.shard_group().allreduce_sum(group_.data(), int64_t(group_.size())); });
    at = 0;
    for (const LatentSegment& g : shared) {
      std::copy(group_.begin() + at, group_.begin() + at + g.row, reduce_.begin() + g.shard_off);
      at += g.row;
    }
    std::copy(group_.begin() + H, group_.begin() + H + O + 5, reduce_.begin() + off_sumx);

    double clip = 1.0;
    if (cfg_.grad_clip > 0) {
      double ss = group_[H + O + 5];
      for (int64_t i = 0; i < H; ++i) ss += group_[i] * group_[i];
      const double norm = std::sqrt(ss);
      if (norm > cfg_.grad_clip) clip = cfg_.grad_clip / norm;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < P; ++i) grad_[i] = float(reduce_[i] * clip);
    AdamConfig adam = cfg_.adam;
    adam.lr = s.lr;
    sae_apply_gradient(params_, grad_, adam_, adam, unit_norm_);

    // Every latent's fire count, for the host's dead-latent counters.
    meter_.timed(double(F_) * sizeof(double), [&] {
      const std::vector<char> all = grid_.shard_group().allgather_bytes(reduce_.data() + off_fire, Fs * 8);
      std::memcpy(fire_all_.data(), all.data(), all.size());
    });

    totals_.sum_sq_err = reduce_[off_scalars + 0];
    totals_.active = reduce_[off_scalars + 1];
    totals_.aux_sq_err = reduce_[off_scalars + 2];
    totals_.sum_x2 = reduce_[off_scalars + 3];
    totals_.penalty = reduce_[off_scalars + 4];
    totals_.sum_x = reduce_.data() + off_sumx;
    totals_.fire = fire_all_.data();
    totals_.batch_threshold = batch_selection(cfg_.sae.architecture) ? ws_.batch_threshold : 0.0f;
    totals_.comm_bytes = meter_.bytes;
    totals_.comm_s = meter_.seconds;
    totals_.step_s = MPI_Wtime() - t0;
    return totals_;
  }

  // Only this shard's latents are rewritten, with the unsharded scales (latent_shard_state.hpp).
  void resample(const std::vector<int32_t>& latents, const std::vector<double>& rows,
                const std::vector<uint8_t>& dead) override {
    resample_latent_range(grid_.shard_group(), range(), params_, adam_, latents, rows, dead);
  }

  std::vector<float> row_errors(const StepBatch& b) const override {
    return row_squared_errors(ws_.recon.data(), b.target ? b.target : b.x + b.lead * params_.d_in, b.n,
                              params_.d_out);
  }

 private:
  // merge_top (sae.hpp LatentShard): every shard's best W per row to every shard, then per row
  // the best K by (value, lower latent) — the order topk_rows keeps — of which this shard's
  // (latent_shard_merge.hpp, shared with the sharded stats).
  void merge_top(const int32_t* idx_in, const float* val_in, int64_t N, int64_t W, int64_t K, int32_t* idx_out,
                 float* val_out) {
    std::vector<char> all;
    meter_.timed(0, [&] { all = gather_shard_candidates(grid_.shard_group(), idx_in, val_in, N, W); });
    meter_.bytes += double(all.size());
    merge_shard_candidates(all, S_, N, W, K, first_, Fs_, idx_out, val_out);
  }

  LatentRange range() const { return {shape_.d_in, F_, Fs_, first_, shape_}; }

  TrainStepConfig cfg_;
  const LatentGrid& grid_;
  const int S_;
  const int64_t F_, Fs_, first_;
  const SaeShape shape_;  // the whole dictionary's
  SaeParams params_;      // this shard's: Fs latents in SaeParams' layout, b_dec (and W_skip) whole
  int64_t n_shared_ = 0;  // b_dec's and W_skip's values
  AdamState adam_;
  const bool unit_norm_;
  LatentShard shard_;
  SaeWorkspace ws_;
  std::vector<double> reduce_, group_, fire_all_;
  std::vector<int64_t> fire_;
  std::vector<float> grad_;
  CommMeter meter_;  // this step's collectives
  StepTotals totals_;
};

}  // namespace

std::unique_ptr<TrainStep> make_cpu_sharded_train_step(const TrainStepConfig& config, const LatentGrid& grid) {
  return std::make_unique<CpuShardedTrainStep>(config, grid);
}

}  // namespace saepipe
