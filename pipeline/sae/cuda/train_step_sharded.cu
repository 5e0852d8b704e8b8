// The training step of one latent shard on one GPU (pipeline/sae/train_step.hpp; the grid:
// latent_grid.hpp), the device counterpart of train_step_sharded.cpp with the same arithmetic
// and the same exchanges. This rank holds latents [first, first + Fs) of W_enc, b_enc, W_dec,
// the thresholds and their Adam moments, and all of b_dec, on the device. A step:
//   1. pre-activations of its latents on its data group's rows (DeviceSae, the encoder's
//      aligned blocks as unsharded); topk / AuxK: every shard offers its best per row, and the
//      shard group keeps the global best (merge_top below: the CPU's merge_shard_candidates,
//      ties to the lower latent); batchtopk: the radix select's histograms summed over every
//      rank; relu / jumprelu: local;
//   2. the reconstruction: each shard's float64 part summed over the shard group and rounded
//      once (sum_rows), so g = dLoss/dx_hat is the unsharded one on every shard; backward of
//      its own latents;
//   3. float64 sums: this shard's gradient, fire counts and metrics over its data group, then
//      b_dec's gradient, the metrics and the squared gradient norm over the shard group; every
//      rank clips by the global norm and applies the same Adam update to its latents (b_dec
//      alike on every rank).
// Sums over a group go through a device GradientComm made from its MPI sub-communicator
// (make_device_gradient_comm: NCCL, its unique id broadcast over that communicator, when each
// rank of the group has its own GPU; else MPI through pinned host memory). The candidates
// (N x K per row, small) and the fire counts are exchanged through host memory with MPI.
// Every exchange is timed from a synchronised stream, so StepTotals' comm_s is the time in
// collectives alone.
//
// Shape legend: N this rank's rows, E = lead + N + tail rows copied in, D d_in, F d_sae (all
// shards), Fs = F / S this shard's latents, K a selection's width, P_s this shard's
// parameters (SaeParams::size_for(D, Fs)).
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/cuda/gradient_comm.hpp"
#include "pipeline/core/comm_meter.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/cuda/step_common.hpp"
#include "pipeline/sae/cuda/step_kernels.hpp"
#include "pipeline/sae/cuda/train_step.hpp"
#include "pipeline/sae/latent_shard_merge.hpp"
#include "pipeline/sae/latent_shard_state.hpp"

namespace saepipe::cuda {
namespace {

class CudaShardedTrainStep final : public DeviceTrainStep {
 public:
  CudaShardedTrainStep(const TrainStepConfig& c, const LatentGrid& grid)
      : DeviceTrainStep(c), grid_(grid), F_(c.d_sae), Fs_(c.d_sae / grid.shards()),
        first_(int64_t(grid.shard()) * Fs_), shard_(device_shard()) {
    SAE_ASSERT(c.d_sae % grid.shards() == 0, "latent shards must divide d_sae (checked with the job)");
    SAE_ASSERT(c.sae.architecture != Architecture::Matryoshka && c.sae.architecture != Architecture::Gated &&
                   !c.transcoder && c.layers == 1,
               "matryoshka, gated, transcoders and crosscoders are not on the cuda backend (refused by it)");
    SaeConfig sae = c.sae;
    sae.kth_largest = nullptr;  // batchtopk sums its histograms instead (world_counts_)
    sae.shard = nullptr;        // the device hooks: shard_
    make_sae(sae, Fs_, &shard_);
    const int64_t D = L_.D;
    group_.resize(2 * D + 6);  // g b_dec | sum x | 5 scalars | squared norm
    partial_.resize(2 * kNormBlocks);
    fire_all_.resize(size_t(F_));
    // The communicators, in the same order on every rank (each creation is a collective).
    if (grid.data_groups() > 1) data_comm_ = make_device_gradient_comm(grid.data_group(), CommBackend::Auto, WireType::Float32);
    if (grid.shards() > 1) shard_comm_ = make_device_gradient_comm(grid.shard_group(), CommBackend::Auto, WireType::Float32);
    // batchtopk: one threshold over the whole global batch and every latent, so every rank.
    if (grid.world().size() > 1)
      world_counts_ = [this](int64_t* counts, int64_t n) {
        meter_.timed(double(n) * sizeof(int64_t), [&] { grid_.world().allreduce_sum(counts, n); });
      };
  }
  ~CudaShardedTrainStep() override { drain(); }

  std::string describe() const override {
    return describe_gemm() + "), latents " + std::to_string(first_) + ".." +
           std::to_string(first_ + Fs_ - 1) + " of " + std::to_string(F_) + " on a grid of " + grid_.describe() +
           (shard_comm_ ? "; shard group over " + shard_comm_->describe() : "") +
           (data_comm_ ? "; data group over " + data_comm_->describe() : "");
  }

  void set_state(const SaeParams& p, const AdamState& a) override {
    SAE_ASSERT(p.d_in == L_.D && p.d_sae == F_, "parameter shapes");
    SaeParams mine(L_.D, Fs_);
    AdamState local;
    take_latent_state(range(), p, a, mine, local);
    set_local_state(mine, local);
  }

  void get_state(SaeParams& p, AdamState& a) const override {
    SaeParams mine;
    AdamState local;
    get_local_state(mine, &local);
    gather_latent_state(grid_.shard_group(), range(), mine, local, p, a);
  }

  void get_local_state(SaeParams& p, AdamState* a) const override { download_state(p, a); }
  void set_local_state(const SaeParams& p, const AdamState& a) override { upload_state(p, a); }

  void gather_params(SaeParams& p) const override {
    SaeParams mine;
    get_local_state(mine, nullptr);
    p = grid_.shard_group().is_root() ? SaeParams(L_.D, F_) : SaeParams();
    gather_latent_range_to_root(grid_.shard_group(), range(), mine.data, p.data);
  }

  // Only this shard's latents are rewritten, with the unsharded scales (latent_shard_state.hpp),
  // on a host copy of its range.
  void resample(const std::vector<int32_t>& latents, const std::vector<double>& rows,
                const std::vector<uint8_t>& dead) override {
    SaeParams mine;
    AdamState adam;
    get_local_state(mine, &adam);
    resample_latent_range(grid_.shard_group(), range(), mine, adam, latents, rows, dead);
    set_local_state(mine, adam);
  }

  const StepTotals& step(const StepBatch& b, const uint8_t* dead, const StepSchedule& s) override {
    const double t0 = MPI_Wtime();
    meter_ = {};
    const int64_t P = L_.size(), Fs = Fs_, D = L_.D, off_sumx = off_sum_x(), off_b_dec = L_.b_dec();
    // Collective over the shard group and, for batchtopk, every rank: called also with no rows.
    forward_backward(b, dead, s, world_counts_);
    pack_tail(b, shard_.lead);  // the shard group's rows are the same: one shard counts them
    double* red = reduce_.data();
    sum_over(data_comm_.get(), red, n_reduce(), stream_);

    // The shard group: b_dec's gradient (the lead's reconstruction term plus every shard's
    // encoder term), sum x and the scalars, and the squared norm of the shard's own gradient
    // (everything but b_dec) for clipping.
    double* grp = group_.data();
    SAE_CUDA_CHECK(cudaMemcpyAsync(grp, red + off_b_dec, sizeof(double) * size_t(D), cudaMemcpyDeviceToDevice, stream_));
    SAE_CUDA_CHECK(
        cudaMemcpyAsync(grp + D, red + off_sumx, sizeof(double) * size_t(D + 5), cudaMemcpyDeviceToDevice, stream_));
    SAE_CUDA_CHECK(cudaMemsetAsync(grp + 2 * D + 5, 0, sizeof(double), stream_));
    if (cfg_.grad_clip > 0) {
      squared_norm_partials(red, off_b_dec, partial_.data(), stream_);
      squared_norm_partials(red + off_b_dec + D, P - off_b_dec - D, partial_.data() + kNormBlocks, stream_);
      sum_doubles(partial_.data(), 2 * kNormBlocks, grp + 2 * D + 5, stream_);
    }
    sum_over(shard_comm_.get(), grp, 2 * D + 6, stream_);
    SAE_CUDA_CHECK(cudaMemcpyAsync(red + off_b_dec, grp, sizeof(double) * size_t(D), cudaMemcpyDeviceToDevice, stream_));
    SAE_CUDA_CHECK(
        cudaMemcpyAsync(red + off_sumx, grp + D, sizeof(double) * size_t(D + 5), cudaMemcpyDeviceToDevice, stream_));

    const double* clip = nullptr;
    if (cfg_.grad_clip > 0) {  // the global norm: the others' squares plus b_dec's (once)
      squared_norm_partials(red + off_b_dec, D, partial_.data(), stream_);
      SAE_CUDA_CHECK(cudaMemcpyAsync(partial_.data() + kNormBlocks, grp + 2 * D + 5, sizeof(double),
                                     cudaMemcpyDeviceToDevice, stream_));
      clip_factor(partial_.data(), kNormBlocks + 1, cfg_.grad_clip, clip_.data(), stream_);
      clip = clip_.data();
    }
    update(s, clip);
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream_));

    // Every latent's fire count, for the host's dead-latent counters.
    meter_.timed(double(F_) * sizeof(double), [&] {
      const std::vector<char> all = grid_.shard_group().allgather_bytes(tail_host_, Fs * int64_t(sizeof(double)));
      std::memcpy(fire_all_.data(), all.data(), all.size());
    });

    fill_totals(fire_all_.data());
    totals_.comm_bytes = meter_.bytes;
    totals_.comm_s = meter_.seconds;
    totals_.step_s = MPI_Wtime() - t0;
    return totals_;
  }

 private:
  LatentRange range() const { return {L_.D, F_, Fs_, first_}; }
  // The DeviceSae's hooks into this step's exchanges (called only once the step is built).
  DeviceLatentShard device_shard() {
    DeviceLatentShard sh;
    sh.first = first_;
    sh.total = F_;
    sh.lead = grid_.shard() == 0;
    sh.merge_top = [this](const int32_t* ii, const float* vi, int64_t N, int64_t W, int64_t K, int32_t* io, float* vo,
                          cudaStream_t s) { merge_top(ii, vi, N, W, K, io, vo, s); };
    sh.sum_rows = [this](double* rows, int64_t N, int64_t D, cudaStream_t s) { sum_over(shard_comm_.get(), rows, N * D, s); };
    return sh;
  }

  // data [n] (device doubles) summed over a group in place, ordered on `stream` (comm null: a
  // group of one). The stream is drained first, so the time measured is the collective's; the
  // host wait polls NCCL's asynchronous errors (a dead peer ends the job with a message).
  void sum_over(GradientComm* comm, double* data, int64_t n, cudaStream_t stream) {
    if (!comm) return;
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
    meter_.timed(double(n) * sizeof(double), [&] {
      comm->start(data, n, stream);
      comm->wait(nullptr);
    });
    comm->wait(stream);
  }

  // merge_top (DeviceLatentShard): this shard's best W per row to the host, every shard's to
  // every shard (MPI), per row the best K by (value, lower latent) — the CPU's
  // merge_shard_candidates, so the selection is the one topk_rows makes of the whole row — and
  // this shard's of them back to the device.
  void merge_top(const int32_t* idx_in, const float* val_in, int64_t N, int64_t W, int64_t K, int32_t* idx_out,
                 float* val_out, cudaStream_t stream) {
    cand_idx_.resize(size_t(N * W));
    cand_val_.resize(size_t(N * W));
    copy_out(cand_idx_.data(), idx_in, N * W, stream);
    copy_out(cand_val_.data(), val_in, N * W, stream);
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<char> all;
    meter_.timed(0,
                 [&] { all = gather_shard_candidates(grid_.shard_group(), cand_idx_.data(), cand_val_.data(), N, W); });
    meter_.bytes += double(all.size());
    merged_idx_.resize(size_t(N * K));
    merged_val_.resize(size_t(N * K));
    merge_shard_candidates(all, grid_.shards(), N, W, K, first_, Fs_, merged_idx_.data(), merged_val_.data());
    copy_in(idx_out, merged_idx_.data(), N * K, stream);
    copy_in(val_out, merged_val_.data(), N * K, stream);
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host vectors are reused by the next call
  }

  const LatentGrid& grid_;
  const int64_t F_, Fs_, first_;
  DeviceLatentShard shard_;  // sae_ (DeviceTrainStep) keeps a pointer to it
  DeviceBuffer<double> group_;
  std::vector<double> fire_all_;  // [F]
  std::vector<int32_t> cand_idx_, merged_idx_;
  std::vector<float> cand_val_, merged_val_;
  std::unique_ptr<GradientComm> data_comm_, shard_comm_;
  SumOverRanks world_counts_;
  CommMeter meter_;  // this step's collectives
  StepTotals totals_;
};

}  // namespace

std::unique_ptr<TrainStep> make_cuda_sharded_train_step(const TrainStepConfig& config, const LatentGrid& grid) {
  return std::make_unique<CudaShardedTrainStep>(config, grid);
}

}  // namespace saepipe::cuda
