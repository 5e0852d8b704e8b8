// One SAE being trained inside the train stage: the host loop around its device-owned step
// (pipeline/sae/train_step.hpp). The step holds the parameters and the optimiser and does the
// forward, backward, gradient sum and update; this holds everything else — schedules,
// dead-latent counters, resampling, metrics, checkpoints and exports — and reads the
// parameters back from the step when it needs them. The stage (train.cpp) owns the data and
// the loop and may train several of these (a sweep) from the same batches.
//
// Shape legend: N local tokens, D d_in, F d_sae.
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pipeline/core/job.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/train_state.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe {

class Backend;
class LatentGrid;
class Logger;
class MpiEnv;

// Where one model goes and what identifies its settings.
struct ModelSpec {
  std::string name;  // "" for the main model, else the sweep entry's name
  TrainConfig config;
  std::string out_dir, fingerprint;
};

class TrainModel {
 public:
  // Checks for a finished checkpoint (done()) or a training state to resume from; errors
  // (user errors naming the file) are the caller's to agree on across ranks. `d_model`: the
  // store's width (a crosscoder reads its hooks side by side: d_in = hooks x d_model).
  TrainModel(ModelSpec spec, int64_t d_model, const MpiEnv& env);
  bool done() const { return done_; }
  int64_t first_step() const { return first_step_; }
  const ModelSpec& spec() const { return spec_; }
  double input_scale() const { return input_scale_; }

  // Makes the backend's training step on `grid` (latent_shards = 1: every rank a data-parallel
  // rank), with the resumed state when there is one: each rank reads its latent range only. The
  // files hold the whole dictionary, so a state saved on one grid resumes on any other.
  void make_step(const Backend& backend, const LatentGrid& grid);
  const TrainStep& train_step() const { return *step_; }
  // Fresh start: tied init, b_dec from the (scaled) sample of what it reconstructs (a
  // transcoder's target rows, else the input rows), JumpReLU thresholds.
  void init(const std::vector<float>& sample, int64_t n_sample, double input_scale, uint64_t seed);
  const SaeShape& shape() const { return shape_; }
  // Opens train_log.jsonl (rank 0), keeping records up to first_step when resuming.
  void open_log(const Logger& log);
  // One step for global batch `step` of size B over n_steps (collective: the step's sums, one
  // allgather for batchtopk, one more allreduce when resampling).
  void step(int64_t step, int64_t n_steps, int64_t B, const StepBatch& rows, uint64_t seed, Logger& log);
  // Unsharded: rank 0 writes. Sharded: collective, every rank writes its latent range into
  // train_state.h5 with parallel HDF5 (the file an unsharded run writes).
  void save_state(int64_t steps_done, std::mutex& h5_mutex) const;
  // Collective as save_state; rank 0 writes saelens/ (sharded: the parameters gathered to rank 0)
  // and the curves; sae.h5 (raw units) last, so it marks completion: rank 0's, or sharded every
  // rank's latent range of it (parallel HDF5).
  void finish(int64_t n_steps, int64_t B, SaeCheckpoint meta, const StoreManifest& store, std::mutex& h5_mutex);

 private:
  void resample_dead(int64_t step, const StepBatch& rows, uint64_t seed, Logger& log);
  // This rank's latents on the grid (unsharded: all of them, written by rank 0) and the shape
  // of a dictionary of that many.
  LatentPart latent_part() const;
  SaeShape local_shape() const;
  TrainState state_header(int64_t steps_done, int64_t adam_t) const;
  void start_at_target_l0(SaeParams& p, const float* sample, int64_t n, double target) const;

  ModelSpec spec_;
  const MpiEnv& env_;
  const LatentGrid* grid_ = nullptr;  // from make_step
  Architecture arch_;
  SaeShape shape_;
  int64_t D_, O_, F_;
  bool done_ = false;
  int64_t first_step_ = 0;
  std::unique_ptr<TrainStep> step_;
  std::unique_ptr<TrainState> resumed_;  // until make_step hands it to the step
  std::vector<int64_t> since_fired_;
  std::vector<uint8_t> dead_;
  double input_scale_ = 1.0, thr_ema_ = 0.0, thr_weight_ = 0.0;
  float lr_ = 0;  // the last step's
  double sparsity_log_scale_ = 0.0;  // target_l0: log of the factor on l1_coef / l0_coef
  double sparsity_coef_ = 0.0;       // the last step's l1_coef (relu) / l0_coef (jumprelu)
  std::ofstream metrics_;
  std::string log_path_;
  double sse_ = 0, active_ = 0, aux_ = 0, var_ = 0, penalty_ = 0, t_start_ = 0;
  double comm_bytes_ = 0, comm_s_ = 0, step_s_ = 0;  // the step's own measure, this window
  int64_t window_steps_ = 0;
  int64_t window_tokens_ = 0;
  std::vector<double> window_fire_;  // [F] tokens each latent fired on, this window
};

}  // namespace saepipe
