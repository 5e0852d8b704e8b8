// One SAE in the train stage. Each step: forward/backward on this rank's rows (float64
// gradient of the global-batch loss), one MPI_Allreduce of gradient | fire counts | sum x |
// metrics, then every rank applies the same clipped, scheduled Adam step, so all ranks hold
// the same parameters. Exact resume: train_state.h5 holds everything the next step needs;
// the data and every random draw are functions of (seed, step).
#include "pipeline/stages/train_model.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/saelens_export.hpp"
#include "pipeline/io/svg_plot.hpp"
#include "pipeline/io/train_state.hpp"
#include "pipeline/core/counter_rng.hpp"
#include "pipeline/sae/resample.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
#include "pipeline/sae/schedule.hpp"

namespace saepipe {

namespace {

constexpr double kThresholdDecay = 0.99;  // batchtopk inference threshold: EMA of batch thresholds

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

TrainModel::TrainModel(ModelSpec spec, int64_t d_in, const MpiEnv& env)
    : spec_(std::move(spec)), env_(env), arch_(parse_architecture(spec_.config.architecture)), D_(d_in),
      F_(spec_.config.d_sae), params_(d_in, spec_.config.d_sae) {
  const TrainConfig& tc = spec_.config;
  const std::string out_path = spec_.out_dir + "/sae.h5", state_path = spec_.out_dir + "/train_state.h5";
  make_dirs(spec_.out_dir);
  if (path_exists(out_path)) {
    done_ = read_sae_checkpoint(out_path).fingerprint == spec_.fingerprint;
    if (!done_) user_error(out_path + ": exists and was trained by a different job; remove it or change run.name");
    return;
  }
  since_fired_.assign(size_t(F_), 0);
  if (path_exists(state_path)) {
    TrainState st = read_train_state(state_path);
    if (st.fingerprint != spec_.fingerprint)
      user_error(state_path + ": was written by a different job; remove it or change run.name");
    if (st.d_in != D_ || st.d_sae != F_) user_error(state_path + ": shapes do not match this job");
    params_.data = std::move(st.params);
    adam_.m = std::move(st.adam_m);
    adam_.v = std::move(st.adam_v);
    adam_.t = st.adam_t;
    since_fired_ = std::move(st.since_fired);
    input_scale_ = st.input_scale;
    thr_ema_ = st.threshold_ema;
    thr_weight_ = st.threshold_weight;
    first_step_ = st.step;
  }
  cfg_.architecture = arch_;
  cfg_.k = tc.k;
  cfg_.auxk = tc.auxk;
  cfg_.auxk_coef = tc.auxk_coef;
  cfg_.l0_coef = tc.l0_coef;
  cfg_.bandwidth = tc.jumprelu_bandwidth;
  cfg_.encoder_block = kTrainEncoderBlock;
  if (env.size() > 1)
    cfg_.kth_largest = [&env](std::vector<float>& c, int64_t kth) {
      std::vector<float> all = env.allgather(c);
      return local_kth_largest(all, kth);
    };
  adam_cfg_.beta1 = float(tc.adam_beta1);
  adam_cfg_.beta2 = float(tc.adam_beta2);
  adam_cfg_.eps = float(tc.adam_eps);
  dead_.assign(size_t(F_), 0);
  for (int64_t f = 0; f < F_; ++f) dead_[f] = since_fired_[f] >= tc.dead_tokens;
  // One reduction buffer: gradient | fire counts | sum x | [sse, active, aux, sum x^2, penalty].
  reduce_.resize(size_t(params_.size() + F_ + D_ + 5));
  fire_.resize(size_t(F_));
  grad_.resize(size_t(params_.size()));
  log_path_ = spec_.out_dir + "/train_log.jsonl";
}

void TrainModel::init(const std::vector<float>& sample, int64_t n, double input_scale, uint64_t seed) {
  const TrainConfig& tc = spec_.config;
  input_scale_ = input_scale;
  init_tied(params_, seed * 2654435761ull + 17);
  if (arch_ == Architecture::JumpReLU)
    std::fill(params_.log_threshold(), params_.log_threshold() + F_, float(std::log(tc.jumprelu_threshold_init)));
  if (tc.b_dec_init != "zeros") {
    std::vector<float> b = tc.b_dec_init == "mean" ? row_mean(sample.data(), n, D_) : geometric_median(sample.data(), n, D_);
    std::copy(b.begin(), b.end(), params_.b_dec());
  }
}

void TrainModel::open_log(const Logger& log) {
  t_start_ = log.elapsed_s();
  if (!env_.is_root()) return;
  if (first_step_ > 0 && path_exists(log_path_)) truncate_log(log_path_, first_step_);
  metrics_.open(log_path_, first_step_ > 0 ? std::ios::app : std::ios::trunc);
  if (!metrics_) output_error(log_path_ + ": cannot open for writing", errno);
}

void TrainModel::step(int64_t step, int64_t n_steps, int64_t B, const StepRows& rows, uint64_t seed, Logger& log) {
  const TrainConfig& tc = spec_.config;
  const int64_t P = params_.size(), D = D_, F = F_;
  const int64_t off_fire = P, off_sumx = P + F, off_scalars = P + F + D, n_reduce = off_scalars + 5;
  std::fill(reduce_.begin(), reduce_.end(), 0.0);
  std::fill(fire_.begin(), fire_.end(), 0);
  cfg_.l1_coef = tc.l1_coef * l1_factor(step, n_steps, tc.l1_warmup_fraction);
  // Always called: batchtopk's threshold is a collective, even for a rank with no rows.
  const SaeStepSums sums = sae_forward_backward(params_, cfg_, rows.x, rows.n, B, dead_.data(), reduce_.data(),
                                                fire_.data(), ws_, rows.lead, rows.tail);
  const float* x_own = rows.x + rows.lead * D;
  double sum_x2 = 0;
  for (int64_t n = 0; n < rows.n; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const double v = x_own[n * D + d];
      reduce_[off_sumx + d] += v;
      sum_x2 += v * v;
    }
  for (int64_t f = 0; f < F; ++f) reduce_[off_fire + f] = double(fire_[f]);
  reduce_[off_scalars + 0] = sums.sum_sq_err;
  reduce_[off_scalars + 1] = sums.sum_active;
  reduce_[off_scalars + 2] = sums.aux_sq_err;
  reduce_[off_scalars + 3] = sum_x2;
  reduce_[off_scalars + 4] = sums.penalty;
  env_.allreduce_sum(reduce_.data(), n_reduce);

  double clip = 1.0;
  if (tc.grad_clip > 0) {
    double ss = 0;
    for (int64_t i = 0; i < P; ++i) ss += reduce_[i] * reduce_[i];
    const double norm = std::sqrt(ss);
    if (norm > tc.grad_clip) clip = tc.grad_clip / norm;
  }
  for (int64_t i = 0; i < P; ++i) grad_[i] = float(reduce_[i] * clip);
  adam_cfg_.lr = float(tc.lr * lr_factor(step, n_steps, tc.lr_warmup_steps, tc.lr_decay_fraction));
  sae_apply_gradient(params_, grad_, adam_, adam_cfg_, unit_norm_decoder(arch_));
  if (arch_ == Architecture::BatchTopK && ws_.batch_threshold > 0) {  // the same on every rank
    thr_ema_ = kThresholdDecay * thr_ema_ + (1 - kThresholdDecay) * double(ws_.batch_threshold);
    thr_weight_ = kThresholdDecay * thr_weight_ + (1 - kThresholdDecay);
  }

  int64_t n_dead = 0;
  for (int64_t f = 0; f < F; ++f) {
    since_fired_[f] = reduce_[off_fire + f] > 0 ? 0 : since_fired_[f] + B;
    dead_[f] = since_fired_[f] >= tc.dead_tokens;
    n_dead += dead_[f];
  }
  if (tc.resample_every > 0 && (step + 1) % tc.resample_every == 0 && step + 1 < n_steps && n_dead > 0) {
    resample_dead(step, rows, seed, log);
    n_dead = 0;
    for (int64_t f = 0; f < F; ++f) n_dead += dead_[f];
  }
  double batch_sumx2 = 0;
  for (int64_t d = 0; d < D; ++d) batch_sumx2 += reduce_[off_sumx + d] * reduce_[off_sumx + d];
  sse_ += reduce_[off_scalars + 0];
  active_ += reduce_[off_scalars + 1];
  aux_ += reduce_[off_scalars + 2];
  var_ += reduce_[off_scalars + 3] - batch_sumx2 / double(B);
  penalty_ += reduce_[off_scalars + 4];
  window_tokens_ += B;

  if ((step + 1) % tc.log_every == 0 || step + 1 == n_steps) {
    const double now = log.elapsed_s();
    const double tok_s = double(window_tokens_) / std::max(1e-9, now - t_start_);
    nlohmann::json rec = {{"step", step + 1},
                          {"tokens", (step + 1) * B},
                          {"mse", sse_ / double(window_tokens_ * D)},  // in scaled units
                          {"fvu", var_ > 0 ? sse_ / var_ : 0.0},
                          {"l0", active_ / double(window_tokens_)},
                          {"aux_mse", aux_ / double(window_tokens_ * D)},
                          {"penalty", penalty_ / double(window_tokens_)},
                          {"loss", (sse_ + penalty_) / double(window_tokens_)},
                          {"lr", adam_cfg_.lr},
                          {"dead_fraction", double(n_dead) / double(F)},
                          {"tokens_per_s", tok_s},
                          {"elapsed_s", now}};
    if (env_.is_root()) {
      metrics_ << rec.dump() << "\n";
      metrics_.flush();
      if (spec_.name.empty()) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "fvu %.4f  l0 %.2f  dead %.3f  %.0f tok/s", rec["fvu"].get<double>(),
                      rec["l0"].get<double>(), rec["dead_fraction"].get<double>(), tok_s);
        log.progress(step + 1, n_steps, buf);
      }
    }
    sse_ = active_ = aux_ = var_ = penalty_ = 0;
    window_tokens_ = 0;
    t_start_ = now;
  }
}

// Anthropic-style resampling: every dead latent points at an input of this global batch,
// drawn with probability proportional to its squared reconstruction error squared, by a
// counter-based draw from (seed, step, latent): the same choice on every rank. The rank
// holding a chosen row contributes it to one allreduce.
void TrainModel::resample_dead(int64_t step, const StepRows& rows, uint64_t seed, Logger& log) {
  const int64_t D = D_, F = F_;
  const float* x_own = rows.x + rows.lead * D;
  std::vector<float> err(static_cast<size_t>(rows.n));
  for (int64_t n = 0; n < rows.n; ++n) {
    double e2 = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double e = double(ws_.recon[n * D + d]) - double(x_own[n * D + d]);
      e2 += e * e;
    }
    err[n] = float(e2);
  }
  const std::vector<float> all = env_.size() > 1 ? env_.allgather(err) : err;  // rank order = batch order
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
      for (int64_t d = 0; d < D; ++d) picked[j * D + d] = double(x_own[t * D + d]) - double(params_.b_dec()[d]);
  }
  env_.allreduce_sum(picked.data(), int64_t(picked.size()));
  const std::vector<float> inputs(picked.begin(), picked.end());
  resample_latents(params_, adam_, latents, inputs.data(), dead_);
  for (int32_t f : latents) {
    since_fired_[f] = 0;
    dead_[f] = 0;
  }
  log.info((spec_.name.empty() ? "" : spec_.name + ": ") + "step " + std::to_string(step + 1) + ": resampled " +
           std::to_string(latents.size()) + " dead latents");
}

void TrainModel::save_state(int64_t steps_done, std::mutex& h5_mutex) const {
  TrainState st;
  st.fingerprint = spec_.fingerprint;
  st.step = steps_done;
  st.d_in = D_;
  st.d_sae = F_;
  st.adam_t = adam_.t;
  st.params = params_.data;
  st.adam_m = adam_.m;
  st.adam_v = adam_.v;
  st.since_fired = since_fired_;
  st.input_scale = input_scale_;
  st.threshold_ema = thr_ema_;
  st.threshold_weight = thr_weight_;
  std::lock_guard<std::mutex> h5(h5_mutex);
  write_train_state(spec_.out_dir + "/train_state.h5", st);
}

void TrainModel::finish(int64_t n_steps, int64_t B, SaeCheckpoint meta, const StoreManifest& store, std::mutex& h5_mutex) {
  metrics_.close();
  if (!metrics_) user_error(log_path_ + ": write failed (disk full?)");
  const double thr = thr_weight_ > 0 ? thr_ema_ / thr_weight_ : 0.0;
  SaeCheckpoint ck = sae_to_checkpoint(params_, arch_, input_scale_, thr);
  ck.hook = meta.hook;
  ck.store = meta.store;
  ck.heldout_first_token = meta.heldout_first_token;
  ck.heldout_n_tokens = meta.heldout_n_tokens;
  ck.resolved_job = meta.resolved_job;
  ck.k = spec_.config.k;
  ck.tokens_seen = n_steps * B;
  ck.step = n_steps;
  ck.fingerprint = spec_.fingerprint;
  write_training_plot(log_path_, spec_.out_dir + "/train_curves.svg");
  write_saelens_export(spec_.out_dir + "/saelens", ck, store);
  if (spec_.config.checkpoint_every > 0) save_state(n_steps, h5_mutex);
  std::lock_guard<std::mutex> h5(h5_mutex);
  write_sae_checkpoint(spec_.out_dir + "/sae.h5", ck);  // last: its presence marks the model complete
}

}  // namespace saepipe
