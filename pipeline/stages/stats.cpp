// stats: evaluate the SAE on held-out tokens (the split train recorded in sae.h5). Ranks
// split the held-out range into contiguous pieces; sums, counts and maxima are reduced to
// rank 0, which writes features.h5 and summary.json. With a synthetic store the decoder is
// also matched against the ground-truth features (MMCS).
#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
#include "pipeline/stages/stages.hpp"

namespace saepipe {

namespace {

// Cosine of every true feature [G,D] with every decoder row [F,D]: for each true feature
// the best decoder cosine (MMCS = their mean), and for each latent its best true feature.
struct GroundTruthMatch {
  double mmcs = 0, frac_09 = 0, frac_099 = 0;
  std::vector<int64_t> latent_best;
  std::vector<float> latent_cos;
};

GroundTruthMatch match_ground_truth(const std::vector<float>& gt, int64_t G, const SaeParams& p) {
  const int64_t D = p.d_in, F = p.d_sae;
  std::vector<float> dec(p.W_dec(), p.W_dec() + F * D);
  cpu::normalize_rows(dec.data(), F, D);  // cosine, whatever the decoder's norms
  std::vector<float> gtn(gt);
  cpu::normalize_rows(gtn.data(), G, D);
  GroundTruthMatch m;
  m.latent_best.assign(size_t(F), -1);
  m.latent_cos.assign(size_t(F), -2.0f);
  const int64_t kBlock = 1024;  // rows of true features per block: memory stays kBlock x F
  std::vector<float> cos(size_t(std::min(kBlock, G) * F));
  double sum = 0;
  int64_t n09 = 0, n099 = 0;
  for (int64_t g0 = 0; g0 < G; g0 += kBlock) {
    const int64_t nb = std::min(kBlock, G - g0);
    cpu::matmul(false, true, nb, F, D, 1.0f, gtn.data() + g0 * D, D, dec.data(), D, 0.0f, cos.data(), F);
    for (int64_t g = 0; g < nb; ++g) {
      float best = -2.0f;
      for (int64_t f = 0; f < F; ++f) {
        float c = cos[g * F + f];
        best = std::max(best, c);
        if (c > m.latent_cos[f]) m.latent_cos[f] = c, m.latent_best[f] = g0 + g;
      }
      sum += best;
      n09 += best >= 0.9f;
      n099 += best >= 0.99f;
    }
  }
  m.mmcs = sum / double(G);
  m.frac_09 = double(n09) / double(G);
  m.frac_099 = double(n099) / double(G);
  return m;
}

}  // namespace

void run_stats(const Job& job, const MpiEnv& env) {
  Logger log(env, "stats");
  h5::silence_errors();
  const std::string store_dir = job.stats_store_dir();
  const std::string sae_path = job.sae_path();
  const std::string out_dir = job.run_dir() + "/stats";
  std::unique_ptr<StoreReader> reader;
  SaeCheckpoint ck;
  int64_t first = 0, count = 0;
  bool done = false;
  std::string fingerprint;
  env.all_or_none([&] {
    if (!path_exists(sae_path)) user_error(sae_path + ": SAE checkpoint not found (run the train stage first)");
    ck = read_sae_checkpoint(sae_path);
    reader = std::make_unique<StoreReader>(store_dir, ck.hook);
    if (reader->d_model() != ck.d_in)
      user_error(sae_path + ": d_in " + std::to_string(ck.d_in) + " does not match d_model " +
                 std::to_string(reader->d_model()) + " of the store " + store_dir);
    if (ck.heldout_n_tokens > 0 && ck.heldout_first_token + ck.heldout_n_tokens <= reader->n_tokens()) {
      first = ck.heldout_first_token;
      count = ck.heldout_n_tokens;
    } else {
      first = 0;  // an SAE trained elsewhere: no split known, use the whole store
      count = reader->n_tokens();
    }
    if (job.stats.n_tokens > 0) count = std::min(count, job.stats.n_tokens);
    make_dirs(out_dir);
    if (env.is_root()) write_resolved_job(job);
    // The statistics depend on the stats settings, the store and the very weights evaluated.
    fingerprint = job.section_toml.at("stats") + "\nstore = " + store_dir + "\nsae = " + sae_path +
                  "\nsae_fingerprint = " + ck.fingerprint + "\nsae_step = " + std::to_string(ck.step) + "\n";
    if (path_exists(out_dir + "/summary.json") && path_exists(out_dir + "/features.h5")) {
      try {
        done = nlohmann::json::parse(read_file(out_dir + "/summary.json")).value("fingerprint", "") == fingerprint;
      } catch (const nlohmann::json::exception&) {
        done = false;  // unreadable: recompute
      }
    }
  });
  if (done) {
    log.info(out_dir + " is complete; nothing to do");
    return;
  }
  if (ck.heldout_n_tokens <= 0) log.info("warning: " + sae_path + " records no held-out split; using the whole store");

  const SaeParams params = sae_params_from_checkpoint(ck);
  const int64_t D = params.d_in, F = params.d_sae;
  const SaeConfig cfg = sae_inference_config(ck);  // by architecture (threshold for batchtopk/jumprelu)
  const int64_t lo = first + count * env.rank() / env.size(), hi = first + count * (env.rank() + 1) / env.size();
  log.info("evaluating " + sae_path + " on " + std::to_string(count) + " held-out tokens [" + std::to_string(first) +
           ", " + std::to_string(first + count) + ") over " + std::to_string(env.size()) + " rank(s)");

  // Reduced sums: sse, sum ||x||^2, active, cosine sum | sum x [D] | fire [F] | act sum [F]
  const int64_t off_sumx = 4, off_fire = 4 + D, off_act = 4 + D + F;
  std::vector<double> sums(size_t(4 + D + 2 * F), 0.0);
  std::vector<float> maxact(size_t(F), 0.0f);
  SaeWorkspace ws;
  const int64_t batch = job.stats.batch_tokens;
  std::vector<float> x(size_t(batch * D));
  // Ranks read different rows; every rank takes the same number of batches so that a read
  // error on one of them can be agreed on (all_or_none) and reported once.
  const int64_t per_rank = (count + env.size() - 1) / env.size();
  const int64_t n_batches = (per_rank + batch - 1) / batch;
  for (int64_t b = 0; b < n_batches; ++b) {
    const int64_t a = lo + b * batch;
    const int64_t n = std::max<int64_t>(0, std::min(batch, hi - a));
    env.all_or_none([&] { if (n > 0) reader->read_rows(a, n, x.data()); });
    if (n == 0) continue;
    sae_encode_decode(params, cfg, x.data(), n, ws);
    for (int64_t t = 0; t < n; ++t) {
      double e2 = 0, x2 = 0, r2 = 0, xr = 0;
      for (int64_t d = 0; d < D; ++d) {
        double xv = x[t * D + d], rv = ws.recon[t * D + d];
        e2 += (rv - xv) * (rv - xv);
        x2 += xv * xv;
        r2 += rv * rv;
        xr += xv * rv;
        sums[off_sumx + d] += xv;
      }
      sums[0] += e2;
      sums[1] += x2;
      sums[3] += (x2 > 0 && r2 > 0) ? xr / std::sqrt(x2 * r2) : 0.0;
      for (int64_t j = 0; j < ws.width; ++j) {  // selection width (k for topk)
        const int32_t f = ws.idx[t * ws.width + j];
        const float v = ws.val[t * ws.width + j];
        if (f < 0 || v <= 0) continue;
        sums[2] += 1;
        sums[off_fire + f] += 1;
        sums[off_act + f] += v;
        maxact[f] = std::max(maxact[f], v);
      }
    }
    log.progress(a + n - lo, hi - lo, "tokens");
  }
  log.end_progress();
  env.allreduce_sum(sums.data(), int64_t(sums.size()));
  env.allreduce_max(maxact.data(), F);

  if (env.is_root()) {
    const double N = double(count);
    double mean_norm2 = 0;
    for (int64_t d = 0; d < D; ++d) mean_norm2 += (sums[off_sumx + d] / N) * (sums[off_sumx + d] / N);
    const double total_var = sums[1] - N * mean_norm2;
    FeatureStats fs;
    fs.n_tokens = count;
    fs.d_sae = F;
    int64_t n_dead = 0;
    for (int64_t f = 0; f < F; ++f) {
      const int64_t c = int64_t(sums[off_fire + f]);
      fs.fire_count.push_back(c);
      fs.density.push_back(double(c) / N);
      fs.log10_density.push_back(c > 0 ? std::log10(double(c) / N) : -10.0);
      fs.max_activation.push_back(maxact[f]);
      fs.mean_activation.push_back(c > 0 ? float(sums[off_act + f] / double(c)) : 0.0f);
      fs.dead.push_back(c == 0);
      n_dead += c == 0;
    }
    nlohmann::json summary = {{"schema", "saepipe.stats.summary"},
                              {"version", 1},
                              {"sae", sae_path},
                              {"store", store_dir},
                              {"hook", ck.hook},
                              {"n_tokens", count},
                              {"first_token", first},
                              {"d_in", D},
                              {"d_sae", F},
                              {"k", ck.k},
                              {"mse", sums[0] / (N * double(D))},
                              {"fvu", total_var > 0 ? sums[0] / total_var : 0.0},
                              {"explained_variance", total_var > 0 ? 1.0 - sums[0] / total_var : 0.0},
                              {"cosine", sums[3] / N},
                              {"l0", sums[2] / N},
                              {"dead_fraction", double(n_dead) / double(F)}};
    if (has_ground_truth(store_dir)) {
      int64_t G = 0, gd = 0;
      std::vector<float> gt = read_ground_truth(store_dir, &G, &gd);
      if (gd != D) user_error(store_dir + "/ground_truth.h5: d_model " + std::to_string(gd) + " != " + std::to_string(D));
      GroundTruthMatch m = match_ground_truth(gt, G, params);
      summary["n_true_features"] = G;
      summary["mmcs"] = m.mmcs;
      summary["frac_recovered_09"] = m.frac_09;
      summary["frac_recovered_099"] = m.frac_099;
      fs.gt_match_index = m.latent_best;
      fs.gt_match_cosine = m.latent_cos;
    }
    summary["resolved_job"] = job.resolved_toml;
    summary["fingerprint"] = fingerprint;
    write_feature_stats(out_dir + "/features.h5", fs, job.resolved_toml);
    write_file_atomic(out_dir + "/summary.json", summary.dump(2) + "\n");  // last: marks completion
    std::string line = "fvu " + std::to_string(summary["fvu"].get<double>()) + ", l0 " +
                       std::to_string(summary["l0"].get<double>()) + ", dead " +
                       std::to_string(summary["dead_fraction"].get<double>());
    if (summary.contains("mmcs")) line += ", MMCS " + std::to_string(summary["mmcs"].get<double>()) +
                                         ", recovered@0.9 " + std::to_string(summary["frac_recovered_09"].get<double>());
    log.info(line);
  }
  env.barrier();
  log.info("wrote " + out_dir + "/summary.json and features.h5");
}

}  // namespace saepipe
