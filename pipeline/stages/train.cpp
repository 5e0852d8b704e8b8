// train: SAEs (every architecture of pipeline/sae/sae.hpp), transcoders (train.target_hook) and
// crosscoders (train.hooks), data parallel, and with
// [resources.train] latent_shards = S each model's latents split over S ranks of a data group
// (pipeline/core/latent_grid.hpp: the rows below are then the data group's). Every rank takes its slice
// of each global batch from the shared shuffled stream (read ahead on a separate thread) and
// every model of the job — the main one and any [[train.sweep]] variants — takes a step on
// the same rows (one pass over the data for all of them). train_model.cpp is a model's host
// loop; its step (pipeline/sae/train_step.hpp, made by the backend) sums float64 gradients
// over the ranks and applies the same Adam step on every rank. Summing float64 partials and
// rounding once, with the encoder computed in globally aligned blocks, makes the weights
// independent of the number of ranks.
//
// Exact resume: every checkpoint_every steps rank 0 writes each model's train_state.h5 (latent
// sharding: every rank its latent range of the same file, with parallel HDF5); the
// data stream and the schedules are functions of the step, so re-running the same command
// continues and ends with the same bits as an uninterrupted run on the same number of ranks.
//
// Several hooks (a transcoder's input and target, a crosscoder's layers) are read by one
// shuffled stream each: the streams have the same seed and split, so the same stream position is
// the same token in each, and a step's rows of every hook are the same tokens.
//
// Memory per rank: per hook read, two shuffle windows in the store's dtype (2 x shuffle_tokens x d_in x 2 or
// 4 bytes) + 2 read-ahead buffers of the local batch + per model, on its step's device:
// parameters, Adam moments, gradient (float and float64) and the [N, d_sae] pre-activations.
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/stage_record.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/batch_prefetcher.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/shuffled_batches.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/stages/backend.hpp"
#include "pipeline/stages/stage_driver.hpp"
#include "pipeline/stages/stages.hpp"
#include "pipeline/stages/train_model.hpp"
#include "pipeline/stages/train_split.hpp"

namespace saepipe {

namespace {

class TrainStage final : public StageBody {
 public:
  TrainStage(const Job& job, const MpiEnv& env, const Backend& backend, Logger& log)
      : job_(job), env_(env), backend_(backend), log_(log) {}

  std::string open_inputs() override {
    const TrainConfig& tc = job_.train;
    // The hooks read: a crosscoder's, else the input and (transcoders) the target.
    std::vector<std::string> hooks = tc.hooks;
    if (hooks.empty()) hooks.push_back(tc.hook);
    if (!tc.target_hook.empty()) hooks.push_back(tc.target_hook);
    for (const std::string& h : hooks) readers_.push_back(std::make_unique<StoreReader>(job_.store_dir(), h));
    reader_ = readers_.front().get();
    split_ = train_split(reader_->manifest(), job_.train.heldout_fraction);
    if (split_.train_tokens <= 0)
      user_error(job_.path + ": train.heldout_fraction: leaves no training tokens in " + job_.store_dir());
    // The weights depend on the train settings, the seed and the store; nothing else.
    return job_.section_toml.at("train") + "\nseed = " + std::to_string(job_.run.seed) + "\nstore = " +
           job_.store_dir() + "\n";
  }
  std::string output_dir() const override { return job_.sae_dir(); }
  // Complete when every model of the job (the main one and each sweep entry) is.
  bool complete(const std::string& fingerprint) override {
    const TrainConfig& tc = job_.train;
    std::vector<ModelSpec> specs = {{"", tc, job_.sae_dir(), fingerprint}};
    for (const TrainConfig& v : tc.sweep)
      specs.push_back({v.sweep_name, v, job_.sae_dir() + "/sweep/" + v.sweep_name, fingerprint + "sweep = " + v.sweep_name + "\n"});
    for (const ModelSpec& s : specs) {
      auto m = std::make_unique<TrainModel>(s, reader_->d_model(), env_);
      if (m->done())
        done_.push_back(s.out_dir);
      else
        models_.push_back(std::move(m));
    }
    return models_.empty();
  }
  void run(const std::string& fingerprint) override;

 private:
  const Job& job_;
  const MpiEnv& env_;
  const Backend& backend_;
  Logger& log_;
  std::vector<std::unique_ptr<StoreReader>> readers_;  // one per hook read
  StoreReader* reader_ = nullptr;                      // the first
  TrainSplit split_;
  std::vector<std::unique_ptr<TrainModel>> models_;  // those still to train
  std::vector<std::string> done_;                    // output directories of finished ones
};

}  // namespace

void run_train(const Job& job, const MpiEnv& env, const Backend& backend) {
  Logger log(env, "train");
  TrainStage stage(job, env, backend, log);
  drive_stage(stage, StageContext{job, env, backend, log});
}

void TrainStage::run(const std::string&) {
  const Job& job = job_;
  const MpiEnv& env = env_;
  Logger& log = log_;
  const TrainConfig& tc = job.train;
  StoreReader* reader = reader_;
  const int64_t H = int64_t(readers_.size());  // hooks read
  const bool transcoder = !tc.target_hook.empty(), crosscoder = !tc.hooks.empty();
  const TrainSplit& split = split_;
  std::vector<std::unique_ptr<TrainModel>>& models = models_;
  for (const std::string& dir : done_) log.info(dir + "/sae.h5 is complete; not trained again");
  const int64_t Dm = reader->d_model(), B = tc.batch_tokens;
  const int64_t D = crosscoder ? H * Dm : Dm;  // the dictionary's input width; its output's is Dm or D
  const int64_t n_steps = std::max<int64_t>(1, tc.n_tokens / B);
  // The grid (every rank sees the same facts: agreed, so rank 0 prints one line). The job's
  // checks already made S divide every d_sae.
  const int64_t S = job.resources_train.latent_shards;
  const std::string shards_key = job.path + ": [resources.train] latent_shards = " + std::to_string(S) + ": ";
  env.all_or_none([&] {
    if (env.size() % S != 0)
      user_error(shards_key + "does not divide the " + std::to_string(env.size()) + " ranks of this run");
    for (const auto& m : models) {
      const int64_t F = m->spec().config.d_sae, unit = S * kTrainEncoderCols;
      if (S > 1 && F % unit != 0)
        user_error(shards_key + (m->spec().name.empty() ? "train" : "sweep " + m->spec().name) + ": d_sae = " +
                   std::to_string(F) + " must be a multiple of latent_shards x " + std::to_string(kTrainEncoderCols) +
                   " = " + std::to_string(unit) + " (each shard holds whole encoder blocks of " +
                   std::to_string(kTrainEncoderCols) + " latents, so the weights do not depend on the grid)");
    }
  });
  const LatentGrid grid(env, int(S));
  // This rank's rows of every global batch: [lo, hi). The encoder runs on the aligned
  // blocks of kTrainEncoderBlock rows around them, [lo_al, hi_al), so each row's
  // pre-activation comes from the same BLAS call for any number of ranks (the cost: up to
  // two partial blocks computed twice when B / ranks is not a multiple of the block).
  const int64_t G = kTrainEncoderBlock;
  // Sharded, the shards of a data group read the same rows.
  const int64_t groups = grid.data_groups(), group = grid.data_group_index();
  const int64_t lo = B * group / groups, hi = B * (group + 1) / groups;
  const int64_t lo_al = hi > lo ? lo / G * G : lo;
  const int64_t hi_al = hi > lo ? std::min(B, (hi + G - 1) / G * G) : hi;
  for (const auto& m : models) {
    env.all_or_none([&] { m->make_step(backend_, grid); });  // parameters on the device from here on
    const TrainConfig& c = m->spec().config;
    std::string on = "on hook " + reader->hook();
    if (transcoder) on += " -> " + readers_[1]->hook() + (m->shape().skip ? " (skip)" : "");
    if (crosscoder) on = "on " + std::to_string(H) + " hooks";
    log.info((m->spec().name.empty() ? "" : "sweep " + m->spec().name + ": ") + c.architecture +
             (transcoder ? " transcoder" : crosscoder ? " crosscoder" : " SAE") + " d_in " + std::to_string(D) +
             " d_sae " + std::to_string(c.d_sae) + " k " + std::to_string(c.k) + " lr " + std::to_string(c.lr) + " " +
             on + "; step on " + m->train_step().describe());
  }
  log.info(std::to_string(models.size()) + " model(s), " + std::to_string(n_steps) + " steps of " +
           std::to_string(B) + " tokens over " + std::to_string(env.size()) + " rank(s)" +
           (S > 1 ? ", a grid of " + grid.describe() : "") + "; " +
           std::to_string(split.train_tokens) + " training tokens, " + std::to_string(split.heldout_tokens) +
           " held out");

  std::vector<std::unique_ptr<ShuffledBatches>> streams;
  for (auto& r : readers_)
    streams.push_back(std::make_unique<ShuffledBatches>(*r, split.train_tokens, tc.shuffle_tokens, uint64_t(job.run.seed)));
  // Initialisation: identical on every rank (same seed, same sample). The input scale is
  // estimated once (from the input: a crosscoder's rows side by side, a transcoder's input hook)
  // and shared by every model; a transcoder's target is scaled by the same factor.
  double input_scale = 1.0;
  if (std::any_of(models.begin(), models.end(), [](const auto& m) { return m->first_step() == 0; })) {
    const int64_t n = std::min(tc.init_tokens, split.train_tokens);
    std::vector<std::vector<float>> read(size_t(H), std::vector<float>(size_t(n * Dm)));
    for (int64_t h = 0; h < H; ++h) {
      ShuffledBatches init_stream(*readers_[h], split.train_tokens, tc.shuffle_tokens, uint64_t(job.run.seed) + 1);
      env.all_or_none([&] { init_stream.read(0, n, read[h].data()); });
    }
    std::vector<float> sample = crosscoder ? std::vector<float>(size_t(n * D)) : read[0];
    if (crosscoder)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < H; ++h) std::copy_n(&read[h][i * Dm], Dm, &sample[(i * H + h) * Dm]);
    if (tc.input_scaling == "unit_mean_squared_norm") {
      double ss = 0;
      for (float v : sample) ss += double(v) * double(v);
      const double msn = ss / double(n);
      if (msn > 0) input_scale = 1.0 / std::sqrt(msn);
    }
    // b_dec starts from what the model reconstructs: a transcoder's target rows.
    std::vector<float>& out = transcoder ? read[1] : sample;
    for (float& v : out) v = float(double(v) * input_scale);
    for (auto& m : models)
      if (m->first_step() == 0) m->init(out, n, input_scale, uint64_t(job.run.seed));
  }
  int64_t first_step = n_steps;
  for (auto& m : models) {
    if (m->first_step() > 0) log.info("resuming " + m->spec().out_dir + " at step " + std::to_string(m->first_step()));
    first_step = std::min(first_step, m->first_step());
    env.all_or_none([&] { m->open_log(log); });
  }

  if (first_step > 0)
    record_stage_event(env, job, "train", "resume",
                       {{"from", "step " + std::to_string(first_step) + " of " + std::to_string(n_steps)}});

  // From here on a reader thread reads the batches ahead; HDF5 calls hold h5_mutex.
  std::mutex h5_mutex;
  std::vector<std::unique_ptr<BatchPrefetcher>> prefetch;
  for (auto& st : streams)
    prefetch.push_back(std::make_unique<BatchPrefetcher>(*st, B, lo_al, hi_al - lo_al, first_step, n_steps, h5_mutex));
  // The step spreads its matmul blocks over the OpenMP threads, each a single-threaded BLAS call.
  const SingleThreadedBlas one_blas_thread;
  std::vector<float> scaled(size_t(std::max<int64_t>(hi_al - lo_al, 1) * D));
  std::vector<float> target(transcoder ? size_t(std::max<int64_t>(hi - lo, 1) * Dm) : 0);
  std::vector<float*> rows(static_cast<size_t>(H));
  for (int64_t step = first_step; step < n_steps; ++step) {
    // Every rank reads whole shuffle windows, so a corrupt shard is found by all of them:
    // agree on it (one small reduction) so it is reported once and every rank exits cleanly.
    env.all_or_none([&] {
      for (int64_t h = 0; h < H; ++h) rows[h] = static_cast<float*>(prefetch[h]->get(step));
    });
    const int64_t n_ext = hi_al - lo_al;
    // Each model scales from the same raw rows (a resumed model carries its own scale).
    for (auto& m : models) {
      if (step < m->first_step()) continue;
      const float s = float(m->input_scale());
      if (crosscoder) {
        for (int64_t i = 0; i < n_ext; ++i)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t d = 0; d < Dm; ++d) scaled[(i * H + h) * Dm + d] = rows[h][i * Dm + d] * s;
      } else {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_ext * D; ++i) scaled[i] = rows[0][i] * s;
      }
      if (transcoder)  // this rank's own rows of the target
        for (int64_t i = 0; i < (hi - lo) * Dm; ++i) target[i] = rows[1][(lo - lo_al) * Dm + i] * s;
      m->step(step, n_steps, B,
              StepBatch{scaled.data(), transcoder ? target.data() : nullptr, lo - lo_al, hi - lo, hi_al - hi, lo, B},
              uint64_t(job.run.seed), log);
      // The same steps on every rank: rank 0 writes, and a failure (a full disk) is agreed on
      // (sharded: every rank writes its range; a failure inside parallel HDF5 aborts the run).
      if (tc.checkpoint_every > 0 && (step + 1) % tc.checkpoint_every == 0 && step + 1 < n_steps)
        env.all_or_none([&] { m->save_state(step + 1, h5_mutex); });  // rank 0 writes
    }
    // A safe point: asked to stop (a signal on any rank), every model that took this step saves it.
    stop_if_interrupted(env, [&] {
      env.all_or_none([&] {  // rank 0 writes
        for (auto& m : models)
          if (step >= m->first_step()) m->save_state(step + 1, h5_mutex);
      });
      return "train_state.h5 at step " + std::to_string(step + 1) + " of " + std::to_string(n_steps);
    });
  }
  log.end_progress();
  env.all_or_none([&] {  // rank 0 writes
    SaeCheckpoint meta;
    meta.hook = reader->hook();
    if (transcoder) meta.target_hook = readers_[1]->hook();
    if (crosscoder)
      for (auto& r : readers_) meta.hooks.push_back(r->hook());
    meta.store = job.store_dir();
    meta.heldout_first_token = split.train_tokens;
    meta.heldout_n_tokens = split.heldout_tokens;
    meta.resolved_job = job.resolved_toml;
    for (auto& m : models) m->finish(n_steps, B, meta, reader->manifest(), h5_mutex);
  });
  env.barrier();
  for (auto& m : models) log.info("wrote " + m->spec().out_dir + "/sae.h5");
}

}  // namespace saepipe
