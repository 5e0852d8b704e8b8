// train: a TopK SAE, data parallel. Each step every rank takes its slice of the global
// batch from the shared shuffled stream, computes the gradient of the global-batch loss on
// its slice (in float64), and one MPI_Allreduce sums gradients, fire counts and metrics;
// every rank then applies the same Adam step. Summing float64 partials and rounding once
// makes the weights independent of the number of ranks up to the last float bit in
// practice.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/shuffled_batches.hpp"
#include "pipeline/sae/topk_sae.hpp"
#include "pipeline/stages/stages.hpp"
#include "pipeline/stages/train_split.hpp"

namespace saepipe {

namespace {

SaeCheckpoint to_checkpoint(const SaeParams& p) {
  SaeCheckpoint c;
  const int64_t D = p.d_in, F = p.d_sae;
  c.d_in = D;
  c.d_sae = F;
  c.W_enc.resize(size_t(D * F));
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) c.W_enc[d * F + f] = p.W_encT()[f * D + d];
  c.b_enc.assign(p.b_enc(), p.b_enc() + F);
  c.W_dec.assign(p.W_dec(), p.W_dec() + F * D);
  c.b_dec.assign(p.b_dec(), p.b_dec() + D);
  c.threshold.assign(size_t(F), 0.0f);
  return c;
}

}  // namespace

void run_train(const Job& job, const MpiEnv& env) {
  Logger log(env, "train");
  h5::silence_errors();
  const TrainConfig& tc = job.train;
  const std::string out_dir = job.sae_dir();
  const std::string out_path = out_dir + "/sae.h5";
  // The weights depend on the train settings, the seed and the store; nothing else.
  const std::string fingerprint = job.section_toml.at("train") + "\nseed = " + std::to_string(job.run.seed) +
                                  "\nstore = " + job.store_dir() + "\n";
  std::unique_ptr<StoreReader> reader;
  TrainSplit split;
  bool done = false;
  env.all_or_none([&] {
    reader = std::make_unique<StoreReader>(job.store_dir(), tc.hook);
    split = train_split(reader->manifest(), tc.heldout_fraction);
    if (split.train_tokens <= 0)
      user_error(job.path + ": train.heldout_fraction: leaves no training tokens in " + job.store_dir());
    make_dirs(out_dir);
    if (env.is_root()) write_resolved_job(job);
    if (path_exists(out_path)) {
      SaeCheckpoint prev = read_sae_checkpoint(out_path);
      done = prev.fingerprint == fingerprint;
      if (!done)
        user_error(out_path + ": exists and was trained by a different job; remove it or change run.name");
    }
  });
  if (done) {
    log.info(out_path + " is complete; nothing to do");
    return;
  }

  const int64_t D = reader->d_model(), F = tc.d_sae, B = tc.batch_tokens;
  const int64_t n_steps = std::max<int64_t>(1, tc.n_tokens / B);
  // This rank's rows of every global batch: [lo, hi).
  const int64_t lo = B * env.rank() / env.size(), hi = B * (env.rank() + 1) / env.size();
  log.info("TopK SAE d_in " + std::to_string(D) + " d_sae " + std::to_string(F) + " k " + std::to_string(tc.k) +
           " on hook " + reader->hook() + ": " + std::to_string(n_steps) + " steps of " + std::to_string(B) +
           " tokens over " + std::to_string(env.size()) + " rank(s); " + std::to_string(split.train_tokens) +
           " training tokens, " + std::to_string(split.heldout_tokens) + " held out");

  ShuffledBatches stream(*reader, split.train_tokens, tc.shuffle_tokens, uint64_t(job.run.seed));

  // Initialisation: identical on every rank (same seed, same sample).
  SaeParams params(D, F);
  init_tied(params, uint64_t(job.run.seed) * 2654435761ull + 17);
  if (tc.b_dec_init != "zeros") {
    const int64_t n = std::min(tc.init_tokens, split.train_tokens);
    std::vector<float> sample(size_t(n * D));
    ShuffledBatches init_stream(*reader, split.train_tokens, tc.shuffle_tokens, uint64_t(job.run.seed) + 1);
    env.all_or_none([&] { init_stream.read(0, n, sample.data()); });
    std::vector<float> b = tc.b_dec_init == "mean" ? row_mean(sample.data(), n, D)
                                                    : geometric_median(sample.data(), n, D);
    std::copy(b.begin(), b.end(), params.b_dec());
  }

  TopKConfig cfg;
  cfg.k = tc.k;
  cfg.auxk = tc.auxk;
  cfg.auxk_coef = tc.auxk_coef;
  AdamConfig adam_cfg;
  adam_cfg.lr = float(tc.lr);
  adam_cfg.beta1 = float(tc.adam_beta1);
  adam_cfg.beta2 = float(tc.adam_beta2);
  adam_cfg.eps = float(tc.adam_eps);
  AdamState adam;
  SaeWorkspace ws;

  // One reduction buffer: gradient | fire counts | sum x | [sse, active, aux, sum x^2].
  const int64_t P = params.size();
  const int64_t off_fire = P, off_sumx = P + F, off_scalars = P + F + D, n_reduce = off_scalars + 4;
  std::vector<double> reduce(static_cast<size_t>(n_reduce));
  std::vector<int64_t> fire(static_cast<size_t>(F));
  std::vector<float> grad(static_cast<size_t>(P));
  std::vector<float> x(size_t(std::max<int64_t>(hi - lo, 1) * D));
  std::vector<int64_t> since_fired(size_t(F), 0);
  std::vector<uint8_t> dead(size_t(F), 0);

  std::ofstream metrics;
  const std::string log_path = out_dir + "/train_log.jsonl";
  if (env.is_root()) {
    metrics.open(log_path, std::ios::trunc);
    if (!metrics) user_error(log_path + ": cannot open for writing");
  }

  double sse = 0, active = 0, aux = 0, var = 0;
  int64_t window_tokens = 0;
  auto t_start = log.elapsed_s();
  for (int64_t step = 0; step < n_steps; ++step) {
    const int64_t n_local = hi - lo;
    // Every rank reads the window, so a corrupt shard is found by all of them: agree on it
    // (one small reduction) so it is reported once and every rank exits cleanly.
    env.all_or_none([&] { stream.read(step * B + lo, n_local, x.data()); });
    std::fill(reduce.begin(), reduce.end(), 0.0);
    std::fill(fire.begin(), fire.end(), 0);
    SaeStepSums sums{};
    if (n_local > 0)
      sums = sae_forward_backward(params, cfg, x.data(), n_local, B, dead.data(), reduce.data(), fire.data(), ws);
    double sum_x2 = 0;
    for (int64_t n = 0; n < n_local; ++n)
      for (int64_t d = 0; d < D; ++d) {
        double v = x[n * D + d];
        reduce[off_sumx + d] += v;
        sum_x2 += v * v;
      }
    for (int64_t f = 0; f < F; ++f) reduce[off_fire + f] = double(fire[f]);
    reduce[off_scalars + 0] = sums.sum_sq_err;
    reduce[off_scalars + 1] = sums.sum_active;
    reduce[off_scalars + 2] = sums.aux_sq_err;
    reduce[off_scalars + 3] = sum_x2;
    env.allreduce_sum(reduce.data(), n_reduce);

    for (int64_t i = 0; i < P; ++i) grad[i] = float(reduce[i]);
    sae_apply_gradient(params, grad, adam, adam_cfg);

    int64_t n_dead = 0;
    for (int64_t f = 0; f < F; ++f) {
      since_fired[f] = reduce[off_fire + f] > 0 ? 0 : since_fired[f] + B;
      dead[f] = since_fired[f] >= tc.dead_tokens;
      n_dead += dead[f];
    }
    double batch_sumx2 = 0;
    for (int64_t d = 0; d < D; ++d) batch_sumx2 += reduce[off_sumx + d] * reduce[off_sumx + d];
    sse += reduce[off_scalars + 0];
    active += reduce[off_scalars + 1];
    aux += reduce[off_scalars + 2];
    var += reduce[off_scalars + 3] - batch_sumx2 / double(B);
    window_tokens += B;

    if ((step + 1) % tc.log_every == 0 || step + 1 == n_steps) {
      double now = log.elapsed_s();
      double tok_s = double(window_tokens) / std::max(1e-9, now - t_start);
      nlohmann::json rec = {{"step", step + 1},
                            {"tokens", (step + 1) * B},
                            {"mse", sse / double(window_tokens * D)},
                            {"fvu", var > 0 ? sse / var : 0.0},
                            {"l0", active / double(window_tokens)},
                            {"aux_mse", aux / double(window_tokens * D)},
                            {"dead_fraction", double(n_dead) / double(F)},
                            {"tokens_per_s", tok_s},
                            {"elapsed_s", now}};
      if (env.is_root()) {
        metrics << rec.dump() << "\n";
        metrics.flush();
        char buf[160];
        std::snprintf(buf, sizeof buf, "fvu %.4f  l0 %.2f  dead %.3f  %.0f tok/s", rec["fvu"].get<double>(),
                      rec["l0"].get<double>(), rec["dead_fraction"].get<double>(), tok_s);
        log.progress(step + 1, n_steps, buf);
      }
      sse = active = aux = var = 0;
      window_tokens = 0;
      t_start = now;
    }
  }
  log.end_progress();
  if (env.is_root()) {
    metrics.close();
    if (!metrics) user_error(log_path + ": write failed (disk full?)");
    SaeCheckpoint ck = to_checkpoint(params);
    ck.architecture = tc.architecture;
    ck.hook = reader->hook();
    ck.k = tc.k;
    ck.tokens_seen = n_steps * B;
    ck.step = n_steps;
    ck.store = job.store_dir();
    ck.heldout_first_token = split.train_tokens;
    ck.heldout_n_tokens = split.heldout_tokens;
    ck.resolved_job = job.resolved_toml;
    ck.fingerprint = fingerprint;
    write_sae_checkpoint(out_path, ck);
  }
  env.barrier();
  log.info("wrote " + out_path);
}

}  // namespace saepipe
