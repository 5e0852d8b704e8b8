// One SAE in the train stage: the host loop around its training step (train_model.hpp).
// Each step: the schedules' values, the step itself (forward/backward, the sums over ranks,
// the same clipped Adam update on every rank), then the dead-latent counters, resampling and
// metrics from the step's totals, which are the same on every rank. Exact resume:
// train_state.h5 holds everything the next step needs; the data and every random draw are
// functions of (seed, step).
#include "pipeline/stages/train_model.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/saelens_export.hpp"
#include "pipeline/io/svg_plot.hpp"
#include "pipeline/io/train_state.hpp"
#include "pipeline/core/counter_rng.hpp"
#include "pipeline/sae/resample.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
#include "pipeline/sae/schedule.hpp"
#include "pipeline/stages/backend.hpp"

namespace saepipe {

namespace {

constexpr double kThresholdDecay = 0.99;  // batchtopk inference threshold: EMA of batch thresholds
// train.target_l0: each step the log of the factor on l1_coef / l0_coef moves by this rate times
// log(batch L0 / target), the log clamped to [-1, 1]: a factor of e in 50 steps at most, so the
// coefficient follows the slow response of the weights without oscillating.
constexpr double kSparsityRate = 0.02;
// jumprelu with a target_l0: its thresholds start where the init sample fires this many times the
// target (start_at_target_l0). With resampling, live MMCS at points 1 / 3 of bench/defaults_grid.py
// (seeds 2001 / 2003, 3M tokens): 1x 0.924 / 0.792, 4x 0.954 / 0.877, 8x 0.973 / 0.886, 16x - / 0.787.
constexpr double kJumpReluStartL0 = 8.0;
// The log's dense_fraction: latents firing on more than this share of a window's tokens (the
// stats stage's default dense_threshold).
constexpr double kDenseDensity = 0.1;

// Keeps the records of train_log.jsonl up to `step` (a resumed run rewrites the rest).
void truncate_log(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    auto rec = nlohmann::json::parse(line, nullptr, false);
    if (!rec.is_discarded() && rec.contains("step") && rec["step"].get<int64_t>() <= step) kept += line + "\n";
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  out << kept;
  if (!out) user_error(path + ": cannot rewrite");
}

}  // namespace

// The dictionary a job's train settings describe, over a store of width d_model.
static SaeShape shape_of(const TrainConfig& tc, Architecture arch, int64_t d_model) {
  SaeShape s;
  const int64_t layers = std::max<int64_t>(1, int64_t(tc.hooks.size()));
  s.d_in = layers * d_model;
  s.d_sae = tc.d_sae;
  s.d_out = s.d_in;
  s.layers = layers;
  s.transcoder = !tc.target_hook.empty();
  s.skip = s.transcoder && tc.skip;
  s.gated = arch == Architecture::Gated;
  return s;
}

TrainModel::TrainModel(ModelSpec spec, int64_t d_model, const MpiEnv& env)
    : spec_(std::move(spec)), env_(env), arch_(parse_architecture(spec_.config.architecture)),
      shape_(shape_of(spec_.config, arch_, d_model)), D_(shape_.d_in), O_(shape_.d_out), F_(spec_.config.d_sae) {
  const TrainConfig& tc = spec_.config;
  const std::string out_path = spec_.out_dir + "/sae.h5", state_path = spec_.out_dir + "/train_state.h5";
  make_dirs(spec_.out_dir);
  if (path_exists(out_path)) {
    done_ = read_sae_fingerprint(out_path) == spec_.fingerprint;
    if (!done_) user_error(out_path + ": exists and was trained by a different job; remove it or change run.name");
    return;
  }
  since_fired_.assign(size_t(F_), 0);
  if (path_exists(state_path)) {
    // The parameters are read in make_step, each rank its latent range only.
    resumed_ = std::make_unique<TrainState>(read_train_state_header(state_path));
    const TrainState& st = *resumed_;
    if (st.fingerprint != spec_.fingerprint)
      user_error(state_path + ": was written by a different job; remove it or change run.name");
    if (st.d_in != D_ || st.d_sae != F_ || st.d_out != O_ || st.layers != shape_.layers ||
        st.transcoder != shape_.transcoder || st.skip != shape_.skip || st.gated != shape_.gated)
      user_error(state_path + ": shapes do not match this job");
    since_fired_ = st.since_fired;
    input_scale_ = st.input_scale;
    thr_ema_ = st.threshold_ema;
    thr_weight_ = st.threshold_weight;
    sparsity_log_scale_ = st.sparsity_log_scale;
    first_step_ = st.step;
  }
  dead_.assign(size_t(F_), 0);
  for (int64_t f = 0; f < F_; ++f) dead_[f] = since_fired_[f] >= tc.dead_tokens;
  window_fire_.assign(size_t(F_), 0.0);
  log_path_ = spec_.out_dir + "/train_log.jsonl";
}

void TrainModel::make_step(const Backend& backend, const LatentGrid& grid) {
  grid_ = &grid;
  const TrainConfig& tc = spec_.config;
  TrainStepConfig c;
  c.d_in = D_;
  c.d_sae = F_;
  c.d_out = O_;
  c.layers = shape_.layers;
  c.transcoder = shape_.transcoder;
  c.skip = shape_.skip;
  c.sae.architecture = arch_;
  c.sae.k = tc.k;
  c.sae.auxk = tc.auxk;
  c.sae.auxk_coef = tc.auxk_coef;
  c.sae.bandwidth = tc.jumprelu_bandwidth;
  if (arch_ == Architecture::Matryoshka) c.sae.prefixes = matryoshka_prefixes_in_force(tc.matryoshka_prefixes, F_);
  c.adam.beta1 = float(tc.adam_beta1);
  c.adam.beta2 = float(tc.adam_beta2);
  c.adam.eps = float(tc.adam_eps);
  c.adam.threshold_lr_scale = float(tc.threshold_lr_scale);
  c.grad_clip = tc.grad_clip;
  c.precision = tc.precision;
  step_ = grid.shards() > 1 ? backend.make_sharded_train_step(c, grid) : backend.make_train_step(c, env_);
  if (resumed_) {  // this rank's latents of the file, which holds the whole dictionary (any grid wrote it)
    const LatentPart part = latent_part();
    read_train_state_part(spec_.out_dir + "/train_state.h5", *resumed_, part);
    SaeParams p(local_shape());
    p.data = std::move(resumed_->params);
    AdamState a;
    a.m = std::move(resumed_->adam_m);
    a.v = std::move(resumed_->adam_v);
    a.t = resumed_->adam_t;
    step_->set_local_state(p, a);
    resumed_.reset();
  }
}

LatentPart TrainModel::latent_part() const {
  const int64_t S = grid_->shards(), Fs = F_ / S;
  const bool first_group = grid_->data_group_index() == 0;  // one rank per range writes
  return {grid_->shard() * Fs, Fs, F_, first_group, first_group && grid_->shard() == 0};
}

SaeShape TrainModel::local_shape() const {
  SaeShape s = shape_;
  s.d_sae = latent_part().count;
  return s;
}

void TrainModel::init(const std::vector<float>& sample, int64_t n, double input_scale, uint64_t seed) {
  const TrainConfig& tc = spec_.config;
  input_scale_ = input_scale;
  // This rank's latents only (latent sharding): the same rows as the whole dictionary's.
  const LatentPart part = latent_part();
  SaeParams p(local_shape());
  init_tied(p, seed * 2654435761ull + 17, part.first);
  if (arch_ == Architecture::JumpReLU)
    std::fill(p.log_threshold(), p.log_threshold() + part.count, float(std::log(tc.jumprelu_threshold_init)));
  if (tc.b_dec_init != "zeros") {
    std::vector<float> b = tc.b_dec_init == "mean" ? row_mean(sample.data(), n, O_) : geometric_median(sample.data(), n, O_);
    std::copy(b.begin(), b.end(), p.b_dec());
  }
  if (tc.target_l0 > 0 && (arch_ == Architecture::ReLU || arch_ == Architecture::JumpReLU || arch_ == Architecture::Gated))
    start_at_target_l0(p, sample.data(), n, tc.target_l0);
  step_->set_local_state(p, AdamState{});
}

// A sparsity target: start at it. t = the (rows * target)th largest encoder pre-activation of
// (up to 2^24 / F rows of) the init sample under the initial weights becomes every jumprelu
// threshold / minus every relu b_enc (gated: b_gate, the gate being pre > 0; its magnitude path
// reads pre - b_gate, unchanged), so the first steps fire about target latents per token
// and the adapting coefficient only has to hold that (a threshold learns slowly through the
// straight-through estimator: from 0.01 to the ~0.2 the toy store needs took thousands of steps).
// jumprelu starts at kJumpReluStartL0 x target instead: its thresholds rise in the first ~80
// steps whatever the coefficient (the reconstruction's straight-through gradient on latents that
// do not yet point at a feature), and from the target that left L0 < 1 and most latents silent
// before they had learned anything (bench/defaults_grid.py; the README's defaults).
// Sharded, p holds this rank's latents: the encoder's blocks of kTrainEncoderCols latents make its
// pre-activations the unsharded ones bit for bit, and t is taken over every shard's.
void TrainModel::start_at_target_l0(SaeParams& p, const float* sample, int64_t n, double target) const {
  const int64_t rows = std::min(n, std::max<int64_t>(64, (int64_t(1) << 24) / F_)), Fp = p.d_sae;
  SaeConfig probe;
  probe.architecture = p.gated ? Architecture::Gated : Architecture::ReLU;  // ws.pre: the (gate) pre-activations
  probe.encoder_cols = kTrainEncoderCols;
  SaeWorkspace ws;
  sae_encode_decode(p, probe, sample, rows, ws);  // ws.pre [rows, Fp]
  // Only positive values can be a usable t: the kth largest positive one is the kth largest.
  std::vector<float> pre;
  for (int64_t i = 0; i < rows * Fp; ++i)
    if (ws.pre[size_t(i)] > 0) pre.push_back(ws.pre[size_t(i)]);
  if (grid_->shards() > 1) pre = grid_->shard_group().allgather(pre);
  const double start = arch_ == Architecture::JumpReLU ? kJumpReluStartL0 * target : target;
  const auto kth = std::clamp<int64_t>(std::llround(double(rows) * start), 1, rows * F_);
  const float t = local_kth_largest(pre, kth);
  if (!(t > 0)) return;  // fewer positive pre-activations than the target: nothing to cut
  if (arch_ == Architecture::JumpReLU)
    std::fill(p.log_threshold(), p.log_threshold() + Fp, std::log(t));
  else
    std::fill(p.b_enc(), p.b_enc() + Fp, -t);
}

void TrainModel::open_log(const Logger& log) {
  t_start_ = log.elapsed_s();
  if (!env_.is_root()) return;
  if (first_step_ > 0 && path_exists(log_path_)) truncate_log(log_path_, first_step_);
  metrics_.open(log_path_, first_step_ > 0 ? std::ios::app : std::ios::trunc);
  if (!metrics_) output_error(log_path_ + ": cannot open for writing", errno);
}

void TrainModel::step(int64_t step, int64_t n_steps, int64_t B, const StepBatch& rows, uint64_t seed, Logger& log) {
  const TrainConfig& tc = spec_.config;
  const int64_t O = O_, F = F_;
  StepSchedule schedule;
  // With a target L0 the coefficient adapts (from l1_coef / l0_coef), which warms it up anyway.
  const bool adaptive = tc.target_l0 > 0;
  const double factor = std::exp(sparsity_log_scale_);
  schedule.l1_coef = adaptive ? tc.l1_coef * factor : tc.l1_coef * l1_factor(step, n_steps, tc.l1_warmup_fraction);
  schedule.l0_coef = adaptive ? tc.l0_coef * factor : tc.l0_coef;
  sparsity_coef_ = arch_ == Architecture::JumpReLU ? schedule.l0_coef : schedule.l1_coef;
  schedule.lr = float(tc.lr * lr_factor(step, n_steps, tc.lr_warmup_steps, tc.lr_decay_fraction));
  lr_ = schedule.lr;
  const StepTotals& t = step_->step(rows, dead_.data(), schedule);
  if (t.batch_threshold > 0) {  // batchtopk; the same on every rank
    thr_ema_ = kThresholdDecay * thr_ema_ + (1 - kThresholdDecay) * double(t.batch_threshold);
    thr_weight_ = kThresholdDecay * thr_weight_ + (1 - kThresholdDecay);
  }

  if (adaptive && B > 0) {  // the totals are the same on every rank, so is the factor
    const double l0 = t.active / double(B);
    sparsity_log_scale_ += kSparsityRate * std::clamp(std::log(std::max(l0, 1e-3) / tc.target_l0), -1.0, 1.0);
  }

  int64_t n_dead = 0;
  for (int64_t f = 0; f < F; ++f) {
    since_fired_[f] = t.fire[f] > 0 ? 0 : since_fired_[f] + B;
    dead_[f] = since_fired_[f] >= tc.dead_tokens;
    n_dead += dead_[f];
    window_fire_[f] += t.fire[f];
  }
  if (tc.resample_every > 0 && (step + 1) % tc.resample_every == 0 && step + 1 < n_steps && n_dead > 0) {
    resample_dead(step, rows, seed, log);
    n_dead = 0;
    for (int64_t f = 0; f < F; ++f) n_dead += dead_[f];
  }
  double batch_sumx2 = 0;
  for (int64_t d = 0; d < O; ++d) batch_sumx2 += t.sum_x[d] * t.sum_x[d];
  sse_ += t.sum_sq_err;
  active_ += t.active;
  aux_ += t.aux_sq_err;
  var_ += t.sum_x2 - batch_sumx2 / double(B);
  penalty_ += t.penalty;
  window_tokens_ += B;
  comm_bytes_ += t.comm_bytes;
  comm_s_ += t.comm_s;
  step_s_ += t.step_s;
  ++window_steps_;

  if ((step + 1) % tc.log_every == 0 || step + 1 == n_steps) {
    const double now = log.elapsed_s();
    const double tok_s = double(window_tokens_) / std::max(1e-9, now - t_start_);
    // Latents firing on more than kDenseDensity of this window's tokens: a collapse onto a few
    // dense latents (BatchTopK's failure mode) that the dead fraction does not show.
    int64_t n_dense = 0;
    for (int64_t f = 0; f < F; ++f) n_dense += window_fire_[f] > kDenseDensity * double(window_tokens_);
    nlohmann::json rec = {{"step", step + 1},
                          {"tokens", (step + 1) * B},
                          {"mse", sse_ / double(window_tokens_ * O)},  // in scaled units
                          {"fvu", var_ > 0 ? sse_ / var_ : 0.0},
                          {"l0", active_ / double(window_tokens_)},
                          {"aux_mse", aux_ / double(window_tokens_ * O)},
                          {"penalty", penalty_ / double(window_tokens_)},
                          {"loss", (sse_ + penalty_) / double(window_tokens_)},
                          {"lr", lr_},
                          {"dead_fraction", double(n_dead) / double(F)},
                          {"dense_fraction", double(n_dense) / double(F)},
                          {"tokens_per_s", tok_s},
                          {"elapsed_s", now}};
    if (step_s_ > 0) {  // the step measures its collectives (rank 0's share)
      rec["comm_bytes_per_step"] = comm_bytes_ / double(window_steps_);
      rec["comm_fraction"] = comm_s_ / step_s_;
    }
    if (arch_ == Architecture::ReLU || arch_ == Architecture::JumpReLU) rec["sparsity_coef"] = sparsity_coef_;
    if (env_.is_root()) {
      metrics_ << rec.dump() << "\n";
      metrics_.flush();
      if (spec_.name.empty()) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "fvu %.4f  l0 %.2f  dead %.3f  dense %.3f  %.0f tok/s",
                      rec["fvu"].get<double>(), rec["l0"].get<double>(), rec["dead_fraction"].get<double>(),
                      rec["dense_fraction"].get<double>(), tok_s);
        log.progress(step + 1, n_steps, buf);
      }
    }
    sse_ = active_ = aux_ = var_ = penalty_ = comm_bytes_ = comm_s_ = step_s_ = 0;
    window_tokens_ = window_steps_ = 0;
    std::fill(window_fire_.begin(), window_fire_.end(), 0.0);
    t_start_ = now;
  }
}

// Anthropic-style resampling: every dead latent points at an input of this global batch,
// drawn with probability proportional to its squared reconstruction error squared, by a
// counter-based draw from (seed, step, latent): the same choice on every rank. The rank
// holding a chosen row contributes it to one allreduce over the data group (a row's latent
// shards hold it alike).
void TrainModel::resample_dead(int64_t step, const StepBatch& rows, uint64_t seed, Logger& log) {
  const int64_t D = D_, F = F_;
  const float* x_own = rows.x + rows.lead * D;
  const std::vector<float> err = step_->row_errors(rows);
  const MpiEnv& rows_env = grid_->data_group();  // one rank per slice of the batch
  const std::vector<float> all = rows_env.size() > 1 ? rows_env.allgather(err) : err;  // rank order = batch order
  std::vector<double> prefix(all.size());
  double acc = 0;
  for (size_t i = 0; i < all.size(); ++i) prefix[i] = acc += double(all[i]) * double(all[i]);
  if (!(acc > 0)) return;
  std::vector<int32_t> latents;
  for (int64_t f = 0; f < F; ++f)
    if (dead_[f]) latents.push_back(int32_t(f));
  std::vector<double> picked(latents.size() * size_t(D), 0.0);
  for (size_t j = 0; j < latents.size(); ++j) {
    const double u = uniform01(counter_hash(seed, 41, uint64_t(step), uint64_t(latents[j])));
    const int64_t t = sample_proportional(prefix, u) - rows.first;
    if (t >= 0 && t < rows.n)
      for (int64_t d = 0; d < D; ++d) picked[j * D + d] = double(x_own[t * D + d]);
  }
  rows_env.allreduce_sum(picked.data(), int64_t(picked.size()));
  // The step subtracts b_dec and rewrites the latents it holds (a sharded step: its range only).
  step_->resample(latents, picked, dead_);
  for (int32_t f : latents) {
    since_fired_[f] = 0;
    dead_[f] = 0;
  }
  log.info((spec_.name.empty() ? "" : spec_.name + ": ") + "step " + std::to_string(step + 1) + ": resampled " +
           std::to_string(latents.size()) + " dead latents");
}

// The training state's scalars and counters (the same on every rank), without parameters.
TrainState TrainModel::state_header(int64_t steps_done, int64_t adam_t) const {
  TrainState st;
  st.fingerprint = spec_.fingerprint;
  st.step = steps_done;
  st.d_in = D_;
  st.d_sae = F_;
  st.d_out = O_;
  st.layers = shape_.layers;
  st.transcoder = shape_.transcoder;
  st.skip = shape_.skip;
  st.gated = shape_.gated;
  st.adam_t = adam_t;
  st.since_fired = since_fired_;
  st.input_scale = input_scale_;
  st.threshold_ema = thr_ema_;
  st.threshold_weight = thr_weight_;
  st.sparsity_log_scale = sparsity_log_scale_;
  return st;
}

void TrainModel::save_state(int64_t steps_done, std::mutex& h5_mutex) const {
  const std::string path = spec_.out_dir + "/train_state.h5";
  if (grid_->shards() > 1) {  // every rank writes its latent range into the one file (parallel HDF5)
    step_->visit_local_state([&](const SaeParams& local, const AdamState& adam) {
      SAE_ASSERT(adam.m.size() == local.data.size() && adam.v.size() == local.data.size(), path + ": Adam moments");
      std::lock_guard<std::mutex> h5(h5_mutex);
      write_train_state_collective(path, state_header(steps_done, adam.t), local.data.data(), adam.m.data(),
                                   adam.v.data(), latent_part(), env_);
    });
    return;
  }
  if (!env_.is_root()) return;
  SaeParams params;
  AdamState adam;
  step_->get_state(params, adam);
  TrainState st = state_header(steps_done, adam.t);
  st.params = std::move(params.data);
  st.adam_m = std::move(adam.m);
  st.adam_v = std::move(adam.v);
  std::lock_guard<std::mutex> h5(h5_mutex);
  write_train_state(path, st);
}

void TrainModel::finish(int64_t n_steps, int64_t B, SaeCheckpoint meta, const StoreManifest& store, std::mutex& h5_mutex) {
  const bool sharded = grid_->shards() > 1;  // then every rank takes part
  if (!sharded && !env_.is_root()) return;
  if (spec_.config.checkpoint_every > 0) save_state(n_steps, h5_mutex);
  const double thr = thr_weight_ > 0 ? thr_ema_ / thr_weight_ : 0.0;
  // The checkpoint's fields beyond the weights of `params` (the whole dictionary or a part).
  auto checkpoint_of = [&](const SaeParams& params) {
    SaeCheckpoint ck = sae_to_checkpoint(params, arch_, input_scale_, thr);
    ck.hook = meta.hook;
    ck.target_hook = meta.target_hook;
    ck.hooks = meta.hooks;
    ck.store = meta.store;
    ck.heldout_first_token = meta.heldout_first_token;
    ck.heldout_n_tokens = meta.heldout_n_tokens;
    ck.resolved_job = meta.resolved_job;
    ck.k = spec_.config.k;
    ck.tokens_seen = n_steps * B;
    ck.step = n_steps;
    ck.fingerprint = spec_.fingerprint;
    return ck;
  };
  // Rank 0: the log, the curves and the SAELens export (the whole dictionary's parameters, gathered
  // to rank 0 alone when sharded: the export holds every tensor whole). Sharded, its outcome is
  // agreed before the collective sae.h5 (unsharded, rank 0 alone is here: the caller agrees).
  const std::function<void()> on_root = [&] {
    SaeParams params;
    if (!sharded) {
      AdamState unused;
      step_->get_state(params, unused);
    } else if (grid_->data_group_index() == 0) {
      step_->gather_params(params);  // collective over rank 0's shard group
    }
    if (!env_.is_root()) return;
    metrics_.close();
    if (!metrics_) user_error(log_path_ + ": write failed (disk full?)");
    write_training_plot(log_path_, spec_.out_dir + "/train_curves.svg");
    SaeCheckpoint ck = checkpoint_of(params);
    params = SaeParams();
    if (!saelens_architecture(ck).empty()) write_saelens_export(spec_.out_dir + "/saelens", ck, store);
    if (!sharded) {
      std::lock_guard<std::mutex> h5(h5_mutex);
      write_sae_checkpoint(spec_.out_dir + "/sae.h5", ck);  // last: its presence marks the model complete
    }
  };
  if (!sharded) return on_root();
  env_.all_or_none(on_root);
  // Every rank writes its latent range of sae.h5 (parallel HDF5), last: it marks completion.
  SaeCheckpoint part_ck;
  step_->visit_local_state([&](const SaeParams& local, const AdamState&) { part_ck = checkpoint_of(local); });
  std::lock_guard<std::mutex> h5(h5_mutex);
  write_sae_checkpoint_collective(spec_.out_dir + "/sae.h5", part_ck, latent_part(), env_);
}

}  // namespace saepipe
