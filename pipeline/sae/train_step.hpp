// One SAE's training step, owned by a device (the backend makes it: pipeline/stages/backend.hpp).
// The parameters and Adam moments live on the device; a step runs forward and backward on this
// rank's rows, sums the gradient and the counters over the ranks of its data group, and applies
// the same clipped Adam update on every rank, so every rank holds the same parameters. The host
// loop (pipeline/stages/train_model.cpp) keeps the rest — schedules, dead-latent counters,
// resampling, checkpoints, logging, exports — and reads the parameters back when it needs them.
//
//   cpu   train_step.cpp        sae_forward_backward (sae.hpp), float64 gradient, one
//                               MPI_Allreduce, sae_apply_gradient
//   cuda  cuda/train_step.cu    the same on one GPU, float64 gradient summed over the group
//                               (NCCL, or MPI through host memory when ranks share a GPU)
//
//   cpu   train_step_sharded.cpp  latent sharding ([resources.train] latent_shards = S > 1):
//                               this rank's latent range on the grid (latent_grid.hpp); the
//                               exact global selections and the summed reconstruction are
//                               exchanged within the data group's shards, gradients summed
//                               over the data groups (float64, as above)
//   cuda  cuda/train_step_sharded.cu  the same on one GPU (the group sums over NCCL or MPI)
//
// A transcoder's step reads an input batch and reconstructs a target batch (StepBatch::target);
// a crosscoder's rows are its layers' rows side by side (d_in = layers x the hook's width).
//
// Shape legend: N this rank's rows, D d_in, O d_out, F d_sae, P parameters (SaeParams::size_for).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/sae/sae.hpp"

namespace saepipe {

class LatentGrid;
class MpiEnv;

// Encoder rows per GEMM call, counted from the start of the global batch. A GEMM may round a
// row differently depending on the call's shape; with globally aligned blocks every row comes
// from the same call for any number of ranks. 1024: as fast as one call on the CPU bench shape
// (smaller blocks re-pack W_enc more often).
inline constexpr int64_t kTrainEncoderBlock = 1024;
// Encoder latents per GEMM call (CPU), for the same reason across latent shards: a GEMM also
// rounds by its column count, so both steps compute the encoder in blocks of 256 latents from
// latent 0, and a shard holds whole blocks (d_sae a multiple of latent_shards x 256): every
// pre-activation comes from the same call on any grid. 256: within the noise of one call on
// the CPU bench shape (the packed rows are reused across the blocks of a row block).
inline constexpr int64_t kTrainEncoderCols = 256;

struct TrainStepConfig {
  int64_t d_in = 0, d_sae = 0;
  // The dictionary's kind beyond an SAE (SaeShape): d_out 0 means d_in.
  int64_t d_out = 0, layers = 1;
  bool transcoder = false, skip = false;
  SaeShape shape() const {
    return {d_in, d_sae, d_out, transcoder, skip, sae.architecture == Architecture::Gated, layers};
  }
  // Architecture, k, AuxK and penalty settings; the step sets encoder_block and kth_largest
  // (batchtopk across its data group), and l1_coef and l0_coef per step (StepSchedule).
  SaeConfig sae;
  AdamConfig adam;       // betas and eps; lr per step (StepSchedule)
  double grad_clip = 0;  // global gradient norm cap; 0: off
  // Encoder GEMM: "fp32", or "bf16" (inputs rounded to bf16, fp32 accumulation and master
  // weights). The CPU step computes in fp32 either way.
  std::string precision = "fp32";
};

// This rank's rows of one global batch of `global_batch` rows: x holds lead + n + tail rows
// (host memory, scaled); the n rows after the first `lead` are this rank's, the others only
// complete the encoder's aligned blocks around them. `first` is the position of this rank's
// first row in the global batch.
struct StepBatch {
  const float* x = nullptr;  // [lead + n + tail, D]
  // The rows to reconstruct, [n, O] (a transcoder's target hook, scaled as x); null: this
  // rank's rows of x (an SAE, a crosscoder).
  const float* target = nullptr;
  int64_t lead = 0, n = 0, tail = 0;
  int64_t first = 0;
  int64_t global_batch = 0;
};

// The schedules' values for one step (pipeline/sae/schedule.hpp).
struct StepSchedule {
  float lr = 0;
  double l1_coef = 0;  // relu
  double l0_coef = 0;  // jumprelu
};

// A step's sums over every rank of the data group (the same on every rank); valid until the
// next step.
struct StepTotals {
  double sum_sq_err = 0;    // sum_n ||x_hat_n - y_n||^2 (y: the target, or x)
  double active = 0;        // (token, latent) pairs with z > 0
  double aux_sq_err = 0;    // AuxK's sum of squared errors
  double sum_x2 = 0;        // sum_n ||y_n||^2
  double penalty = 0;       // sum_n of the L1 / L0 term
  const double* sum_x = nullptr;  // [O] sum_n y_n
  const double* fire = nullptr;   // [F] tokens on which each latent fired
  float batch_threshold = 0;      // batchtopk: this batch's threshold (0: none)
  // This rank's share of the step: bytes it handed to collectives (allreduce: the buffer;
  // allgather: what it received), seconds in them and in the whole step (0: not measured).
  double comm_bytes = 0, comm_s = 0, step_s = 0;
};

class TrainStep {
 public:
  virtual ~TrainStep() = default;
  virtual std::string describe() const = 0;  // device and precision, for the log

  // The parameters and optimiser state, in (fresh start, resume, after resampling) and out
  // (checkpoints, resampling, the final export). An empty AdamState starts the moments at 0.
  // Always the whole dictionary: a sharded step takes its range from set_state and gathers
  // the others' in get_state (then a collective over the grid).
  virtual void set_state(const SaeParams& params, const AdamState& adam) = 0;
  virtual void get_state(SaeParams& params, AdamState& adam) const = 0;
  // This rank's own part, no collective (latent sharding: its latent range, the layout of
  // SaeParams with that many latents and b_dec whole; unsharded: the whole, as get_state and
  // set_state). `adam` null: the parameters alone. What checkpoints write and read per range.
  virtual void get_local_state(SaeParams& params, AdamState* adam) const {
    AdamState unused;
    get_state(params, adam != nullptr ? *adam : unused);
  }
  virtual void set_local_state(const SaeParams& params, const AdamState& adam) { set_state(params, adam); }
  // Calls `fn` with this rank's own part: in place where the step keeps it in host memory (the
  // sharded CPU step: a checkpoint then needs no second copy of it), else a copy.
  virtual void visit_local_state(const std::function<void(const SaeParams&, const AdamState&)>& fn) const {
    SaeParams params;
    AdamState adam;
    get_local_state(params, &adam);
    fn(params, adam);
  }
  // The whole dictionary's parameters (no Adam moments) on rank 0 of the shard group, for the
  // SAELens export; the other ranks' `params` are left empty. Sharded: collective over the shard
  // group. Unsharded: get_state's.
  virtual void gather_params(SaeParams& params) const {
    AdamState unused;
    get_state(params, unused);
  }

  // One step; `dead` [F] (host) marks the dead latents for AuxK. Collective over the data
  // group: every rank calls it, also with no rows.
  virtual const StepTotals& step(const StepBatch& batch, const uint8_t* dead, const StepSchedule& schedule) = 0;

  // Squared reconstruction error of each of this rank's rows (against the target) in the last
  // step, [n] (resampling).
  virtual std::vector<float> row_errors(const StepBatch& batch) const = 0;

  // Resampling (pipeline/sae/resample.hpp): latents[r] takes the direction of rows[r] - b_dec
  // (rows [R, D]: the chosen inputs, scaled, the same on every rank). `dead` [d_sae] flags every
  // latent. Collective over a sharded step's shard group. The default gathers the state
  // (get_state), resamples and sets it back; the sharded step rewrites its own latents only.
  virtual void resample(const std::vector<int32_t>& latents, const std::vector<double>& rows,
                        const std::vector<uint8_t>& dead);
};

// The CPU step (train_step.cpp); `data_group` sums the gradients.
std::unique_ptr<TrainStep> make_cpu_train_step(const TrainStepConfig& config, const MpiEnv& data_group);
// The CPU step of this rank's latent range on `grid` (train_step_sharded.cpp).
std::unique_ptr<TrainStep> make_cpu_sharded_train_step(const TrainStepConfig& config, const LatentGrid& grid);

// Encoder inputs of resampled latents: rows [R, D] minus b_dec [D], rounded to float.
std::vector<float> resample_inputs(const std::vector<double>& rows, const float* b_dec, int64_t D);

// Squared reconstruction error of each row, [n]: recon [n, D] against x [n, D] (row_errors).
std::vector<float> row_squared_errors(const float* recon, const float* x, int64_t n, int64_t D);

}  // namespace saepipe
