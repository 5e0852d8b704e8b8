// stats: evaluate the SAE on held-out tokens (the split train recorded in sae.h5). The held-out
// range is cut into batches of whole sequences, and rank r takes a contiguous run of them, so
// every batch is encoded the same way whatever the number of ranks. Two passes (pipeline/stats/
// feature_passes.hpp): the first encodes and finds counts, maxima and the top examples, the
// second (over the first's codes, kept in a scratch file: code_spill.hpp) the histograms,
// quantiles and interval samples over each latent's global maximum. Every merged result is
// identical for any number of ranks. With a model, CE loss recovered and logit effects. Rank 0
// adds the decoder neighbours (and the true features' match on synthetic stores) and writes
// features.h5, examples.h5 and summary.json.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/saelens_import.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
#include "pipeline/sae/train_step.hpp"
#include "pipeline/stages/backend.hpp"
#include "pipeline/stages/stage_driver.hpp"
#include "pipeline/stages/stages.hpp"
#include "pipeline/model/logit_effects.hpp"
#include "pipeline/stats/ce_loss_eval.hpp"
#include "pipeline/stats/code_spill.hpp"
#include "pipeline/stats/decoder_neighbours.hpp"
#include "pipeline/stats/feature_passes.hpp"
#include "pipeline/stats/ground_truth_match.hpp"
#include "pipeline/stats/shard_assembly.hpp"

namespace saepipe {

namespace {

// The model the store's activations came from: this job's harvest model, else the one the
// store's manifest names. Empty for synthetic stores.
std::string model_dir_of(const Job& job, const StoreManifest& m) {
  if (job.harvest.source == "model" && !job.harvest.model.empty()) return job.harvest.model;
  if (m.source.value("type", "") == "model") return m.source.value("model", "");
  return "";
}

// A generous estimate of features.h5 + examples.h5 + summary.json: the space the stage keeps free
// for its own outputs.
int64_t stats_output_bytes(int64_t F, const StatsConfig& sc) {
  const int64_t C = sc.context_before + 1 + sc.context_after;
  const int64_t examples = sc.top_examples + sc.interval_bins * sc.interval_examples;
  const int64_t per_feature = examples * (C * 8 + 16) +
                              8 * (sc.histogram_bins + int64_t(sc.quantiles.size()) + 2 * sc.neighbours + 4 * sc.logit_tokens + 32);
  return F * per_feature + (int64_t(16) << 20);
}

// Latent rows of decoder block l [F, w] of a crosscoder (w = d_out / layers).
std::vector<float> decoder_block(const SaeParams& p, int64_t l) {
  const int64_t F = p.d_sae, O = p.d_out, w = O / p.layers;
  std::vector<float> b(static_cast<size_t>(F * w));
  for (int64_t f = 0; f < F; ++f) std::copy_n(p.W_dec() + f * O + l * w, w, &b[f * w]);
  return b;
}

// A crosscoder's decoder norm per hook of each latent p holds (latent shards: its range), for
// features.h5.
void add_decoder_norms_per_layer(const SaeParams& p, FeatureStats& fs) {
  const int64_t L = p.layers, w = p.d_out / L, F = p.d_sae;
  fs.n_layers = L;
  fs.decoder_norm_per_layer.assign(size_t(F * L), 0.0f);
  for (int64_t f = 0; f < F; ++f)
    for (int64_t l = 0; l < L; ++l) {
      double ss = 0;
      for (int64_t d = 0; d < w; ++d) ss += std::pow(double(p.W_dec()[f * p.d_out + l * w + d]), 2);
      fs.decoder_norm_per_layer[size_t(f * L + l)] = float(std::sqrt(ss));
    }
}

// Transcoders and crosscoders in summary.json: the hooks; for crosscoders each hook's FVU and MSE.
void add_variant_summary(const SaeCheckpoint& ck, const SaeParams& p, const ReconstructionSums& rs,
                         nlohmann::json& summary) {
  summary["d_out"] = p.d_out;
  if (ck.transcoder) {
    summary["target_hook"] = ck.target_hook;
    summary["skip"] = p.skip;
    return;
  }
  const int64_t L = p.layers, w = p.d_out / L;
  const double N = double(rs.n_tokens);
  summary["hooks"] = ck.hooks;
  nlohmann::json fvu = nlohmann::json::array(), mse = nlohmann::json::array();
  for (int64_t l = 0; l < L; ++l) {
    double mean_norm2 = 0;
    for (int64_t d = l * w; d < (l + 1) * w; ++d) mean_norm2 += std::pow(rs.sums.value(size_t(4 + d)) / N, 2);
    const double sse = rs.sums.value(size_t(4 + p.d_out + 2 * l));
    const double var = rs.sums.value(size_t(4 + p.d_out + 2 * l + 1)) - N * mean_norm2;
    fvu.push_back(var > 0 ? sse / var : 0.0);
    mse.push_back(sse / (N * double(w)));
  }
  summary["fvu_per_layer"] = fvu;
  summary["mse_per_layer"] = mse;
}

// The true features' match of the rows p holds; latent shards (`shards`: the group, in shard order):
// each true feature's best over every shard's latents.
double shard_group_mmcs(const std::vector<float>& gt, int64_t G, const float* rows, int64_t F, int64_t D,
                        const MpiEnv& shards) {
  GroundTruthMatch m = match_ground_truth(gt, G, rows, F, D);
  if (shards.size() > 1) {
    shards.allreduce_max(m.feature_best.data(), G);
    summarise_ground_truth_match(m);
  }
  return m.mmcs;
}

// Synthetic stores, beyond the decoder's MMCS against the hook it writes: a transcoder's encoder
// against the input hook's directions A; a crosscoder's decoder block of each hook against that
// hook's directions ("mmcs_per_layer"; "mmcs" is the first hook's).
// The encoder: latent f reads x through its row e_f, and with features in superposition the
// best detector of feature i is not A_i but C^-1 A_i (C the covariance of the input: the least
// squares fit of the code from x), so e_f itself is compared ("mmcs_encoder_rows") and so is the
// input direction the latent reads, Cov(x, e_f . x) = C e_f, which is A_i when e_f = C^-1 A_i
// ("mmcs_encoder"). `cov` is C [D, D] over the held-out input rows (transcoders only).
// Latent shards: collective over `shards` (p holds their latent range), the result on its rank 0.
void add_variant_ground_truth(const std::string& store_dir, const SaeCheckpoint& ck, const SaeParams& p,
                              const std::vector<double>& cov, const MpiEnv& shards, nlohmann::json& summary) {
  const int64_t F = p.d_sae, D = p.d_in;
  if (ck.transcoder) {
    int64_t G = 0, gd = 0;
    const std::vector<float> gt = read_ground_truth(store_dir, ck.hook, &G, &gd);
    if (gd != D) user_error(store_dir + "/ground_truth.h5: d_model " + std::to_string(gd) + " != " + std::to_string(D));
    summary["mmcs_encoder_rows"] = shard_group_mmcs(gt, G, p.W_encT(), F, D, shards);
    std::vector<float> read(static_cast<size_t>(F * D));
    for (int64_t f = 0; f < F; ++f)
      for (int64_t i = 0; i < D; ++i) {
        double acc = 0;
        for (int64_t j = 0; j < D; ++j) acc += cov[size_t(i * D + j)] * double(p.W_encT()[f * D + j]);
        read[size_t(f * D + i)] = float(acc);
      }
    summary["mmcs_encoder"] = shard_group_mmcs(gt, G, read.data(), F, D, shards);
  }
  if (p.layers > 1) {
    nlohmann::json per = nlohmann::json::array();
    for (int64_t l = 0; l < p.layers; ++l) {
      int64_t G = 0, gd = 0;
      const std::vector<float> gt = read_ground_truth(store_dir, ck.hooks[size_t(l)], &G, &gd);
      const int64_t w = p.d_out / p.layers;
      if (gd != w) user_error(store_dir + "/ground_truth.h5: d_model " + std::to_string(gd) + " != " + std::to_string(w));
      const std::vector<float> block = decoder_block(p, l);
      per.push_back(shard_group_mmcs(gt, G, block.data(), F, w, shards));
    }
    summary["mmcs_per_layer"] = per;
  }
}

// [resources.stats] latent_shards = S > 1: this rank's latent range of sae.h5 (a SAELens
// directory is read whole: not sharded), after the checks train makes (one line each, exit 2).
SaeCheckpoint read_sharded_sae(const Job& job, const MpiEnv& env, const std::string& path) {
  const int64_t S = job.resources("stats").latent_shards;
  const std::string key = job.path + ": [resources.stats] latent_shards = " + std::to_string(S) + ": ";
  if (std::filesystem::is_directory(path)) user_error(key + path + " is a SAELens directory; latent shards read an sae.h5 (set latent_shards = 1)");
  const int64_t F = h5::open_file(path).read_int_attribute("d_sae"), unit = S * kTrainEncoderCols;
  if (S > F) user_error(key + "is more than the SAE's d_sae = " + std::to_string(F) + " (" + path + ")");
  if (env.size() % S != 0) user_error(key + "does not divide the " + std::to_string(env.size()) + " ranks of this run");
  if (F % unit != 0)
    user_error(key + "d_sae = " + std::to_string(F) + " of " + path + " must be a multiple of latent_shards x " +
               std::to_string(kTrainEncoderCols) + " = " + std::to_string(unit) + " (each shard holds whole encoder blocks of " +
               std::to_string(kTrainEncoderCols) + " latents, so the statistics do not depend on the grid)");
  const CheckpointRange range{F / S * (env.rank() % S), F / S};
  return read_sae_checkpoint(path, &range);
}

class StatsStage final : public StageBody {
 public:
  StatsStage(const Job& job, const MpiEnv& env, const Backend& backend, Logger& log)
      : job_(job), env_(env), backend_(backend), log_(log), store_dir_(job.stats_store_dir()),
        sae_path_(job.sae_path()), out_dir_(job.run_dir() + "/stats") {}

  std::string open_inputs() override;
  std::string output_dir() const override { return out_dir_; }
  bool complete(const std::string& fingerprint) override;
  void run(const std::string& fingerprint) override;

 private:
  const Job& job_;
  const MpiEnv& env_;
  const Backend& backend_;
  Logger& log_;
  const std::string store_dir_, sae_path_, out_dir_;
  std::unique_ptr<StoreReader> reader_;
  // Crosscoders: the other layers' hooks (reader_ reads the first); transcoders: the target hook.
  std::vector<std::unique_ptr<StoreReader>> more_;
  SaeCheckpoint ck_;  // sharded: this rank's latents (d_sae_total: all of them)
  int64_t first_ = 0, count_ = 0;
  const int shards_ = int(job_.resources("stats").latent_shards);
};

std::string StatsStage::open_inputs() {
  if (!path_exists(sae_path_)) user_error(sae_path_ + ": SAE checkpoint not found (run the train stage first)");
  if (shards_ > 1) {
    ck_ = read_sharded_sae(job_, env_, sae_path_);
  } else {
    ck_ = read_sae_for_evaluation(sae_path_);  // sae.h5 or a SAELens directory
    ck_.d_sae_total = ck_.d_sae;
  }
  reader_ = std::make_unique<StoreReader>(store_dir_, ck_.hook);
  for (size_t l = 1; ck_.layers > 1 && l < ck_.hooks.size(); ++l)
    more_.push_back(std::make_unique<StoreReader>(store_dir_, ck_.hooks[l]));
  if (ck_.transcoder) more_.push_back(std::make_unique<StoreReader>(store_dir_, ck_.target_hook));
  if (reader_->d_model() * ck_.layers != ck_.d_in)
    user_error(sae_path_ + ": d_in " + std::to_string(ck_.d_in) + " does not match d_model " +
               std::to_string(reader_->d_model()) + " of the store " + store_dir_ +
               (ck_.layers > 1 ? " times its " + std::to_string(ck_.layers) + " hooks" : ""));
  if (ck_.transcoder && more_.back()->d_model() != ck_.d_out)
    user_error(sae_path_ + ": d_out " + std::to_string(ck_.d_out) + " does not match d_model " +
               std::to_string(more_.back()->d_model()) + " of the store " + store_dir_);
  if (ck_.heldout_n_tokens > 0 && ck_.heldout_first_token + ck_.heldout_n_tokens <= reader_->n_tokens()) {
    first_ = ck_.heldout_first_token;
    count_ = ck_.heldout_n_tokens;
  } else {
    first_ = 0;  // an SAE trained elsewhere: no split known, use the whole store
    count_ = reader_->n_tokens();
  }
  if (job_.stats.n_tokens > 0) {  // whole sequences
    const int64_t seq = std::max<int64_t>(1, reader_->manifest().context);
    count_ = std::min(count_, (job_.stats.n_tokens + seq - 1) / seq * seq);
  }
  // The statistics depend on the stats settings, the store and the very weights evaluated.
  return job_.section_toml.at("stats") + "\nstore = " + store_dir_ + "\nsae = " + sae_path_ +
         "\nsae_fingerprint = " + ck_.fingerprint + "\nsae_step = " + std::to_string(ck_.step) + "\n";
}

bool StatsStage::complete(const std::string& fingerprint) {
  if (env_.is_root()) CodeSpill::remove_leftovers(out_dir_);  // of killed runs
  if (!path_exists(out_dir_ + "/summary.json") || !path_exists(out_dir_ + "/features.h5") ||
      !path_exists(out_dir_ + "/examples.h5"))
    return false;
  try {
    return nlohmann::json::parse(read_file(out_dir_ + "/summary.json")).value("fingerprint", "") == fingerprint;
  } catch (const nlohmann::json::exception&) {
    return false;  // unreadable: recompute
  }
}

}  // namespace

void run_stats(const Job& job, const MpiEnv& env, const Backend& backend) {
  Logger log(env, "stats");
  StatsStage stage(job, env, backend, log);
  drive_stage(stage, StageContext{job, env, backend, log});
}

void StatsStage::run(const std::string& fingerprint) {
  const Job& job = job_;
  const MpiEnv& env = env_;
  Logger& log = log_;
  const std::string& store_dir = store_dir_;
  const std::string& sae_path = sae_path_;
  const std::string& out_dir = out_dir_;
  const std::unique_ptr<StoreReader>& reader = reader_;
  const SaeCheckpoint& ck = ck_;
  const int64_t first = first_, count = count_;
  std::string model_dir;
  std::unique_ptr<TransformerModel> model;
  std::string ce_splice_problem;  // why a transcoder cannot be spliced (empty: it can)
  // With a model: CE loss recovered and logit effects. An unreadable model is a user error.
  env.all_or_none([&] {
    model_dir = model_dir_of(job, reader->manifest());
    if (model_dir.empty() || (job.stats.ce_loss_tokens == 0 && job.stats.logit_tokens == 0)) return;
    model = backend_.load_transformer_full(model_dir);
    if (job.stats.ce_loss_tokens > 0) model->hook(ck.hook);  // one the family has (user error otherwise)
    if (job.stats.ce_loss_tokens > 0 && ck.transcoder) ce_splice_problem = transcoder_splice_problem(*model, ck.hook, ck.target_hook);
    if (model->d_model() * ck.layers != ck.d_in)
      user_error(model_dir + ": d_model " + std::to_string(model->d_model()) + " does not match the SAE's d_in " +
                 std::to_string(ck.d_in) + (ck.layers > 1 ? " over " + std::to_string(ck.layers) + " hooks" : "") +
                 " (" + sae_path + ")");
  });
  if (ck.heldout_n_tokens <= 0) log.info("warning: " + sae_path + " records no held-out split; using the whole store");

  const SaeParams params = sae_params_from_checkpoint(ck);
  ck_.W_enc = {};  // in params now
  ck_.W_dec = {};
  // Latent shards: ranks = data groups x S shards; this rank's params hold latents
  // [shard * Fs, + Fs), its data group's batches are encoded by every shard of the group.
  const LatentGrid grid(env, shards_);
  // D: what the encoder reads (a crosscoder's hooks side by side); O: what is reconstructed.
  // F: the dictionary's latents, Fs this rank's (F unsharded).
  const int64_t D = params.d_in, O = params.d_out, F = ck.d_sae_total, Fs = params.d_sae, Dm = reader->d_model();
  const int64_t n_layers = params.layers;
  SaeConfig cfg = sae_inference_config(ck);  // by architecture (threshold for batchtopk/jumprelu)
  // The encoder in blocks of latents as train's, so a shard computes its pre-activations with
  // the very BLAS calls of an unsharded run: the selections and statistics do not depend on S.
  cfg.encoder_cols = kTrainEncoderCols;
  const StatsConfig& sc = job.stats;
  // Batches of whole sequences, so an example's context never leaves its batch.
  const int64_t L = std::max<int64_t>(1, reader->manifest().context);
  const int64_t batch = ((sc.batch_tokens + L - 1) / L) * L;
  const int64_t n_batches = (count + batch - 1) / batch;
  const int64_t groups = grid.data_groups(), group = grid.data_group_index();
  const int64_t b_lo = n_batches * group / groups, b_hi = n_batches * (group + 1) / groups;
  const int64_t rounds = (n_batches + groups - 1) / groups;  // the same on every rank
  log.info("evaluating " + sae_path + " on " + std::to_string(count) + " held-out tokens [" + std::to_string(first) +
           ", " + std::to_string(first + count) + ") over " + std::to_string(env.size()) + " rank(s)" +
           (shards_ > 1 ? ", a grid of " + grid.describe() + ", latents " + std::to_string(grid.shard() * Fs) + ".." +
                              std::to_string(grid.shard() * Fs + Fs - 1) + " here"
                        : "") +
           ", two passes");

  ExampleOptions eo;
  eo.top = sc.top_examples;
  eo.interval_bins = sc.interval_bins;
  eo.interval_per_bin = sc.interval_examples;
  eo.before = sc.context_before;
  eo.after = sc.context_after;
  eo.seed = uint64_t(sc.seed);

  // The encoder and the passes on the backend's device.
  std::unique_ptr<FeaturePasses> passes;
  env.all_or_none([&] {
    passes = shards_ > 1 ? backend_.make_sharded_feature_passes(params, cfg, sc.histogram_bins, eo, grid)
                         : backend_.make_feature_passes(params, cfg, sc.histogram_bins, eo);
  });
  std::vector<float> x(static_cast<size_t>(batch * D));
  std::vector<float> part(n_layers > 1 ? static_cast<size_t>(batch * Dm) : 0);  // one layer's rows
  std::vector<float> y(ck.transcoder ? static_cast<size_t>(batch * O) : 0);      // a transcoder's target
  std::vector<int32_t> tokens(static_cast<size_t>(batch));
  // The second pass reads the first pass's codes back from a per-rank scratch file rather than
  // encoding again, unless that file would pass scratch_codes_gib or leave too little room for
  // the stage's own outputs (then it re-encodes: the file is a shortcut, never a reason to fail).
  const auto spill_limit = int64_t(sc.scratch_codes_gib * double(int64_t(1) << 30));
  const int64_t output_bytes = stats_output_bytes(F, sc);
  env.all_or_none([&] { require_free_space(out_dir, output_bytes, "writing the statistics"); });
  std::unique_ptr<CodeSpill> spill;
  env.all_or_none([&] {
    if (!sc.scratch_codes) return;
    spill = std::make_unique<CodeSpill>(out_dir + "/.codes." + std::to_string(env.rank()) + "." +
                                        std::to_string(::getpid()) + ".tmp");
  });
  // One pass over this rank's batches. Every rank takes the same number of rounds and makes the
  // same collective calls in each, so that an error on one of them (a bad row, a full disk) is
  // agreed on (all_or_none) and reported once.
  // Whether a rank reads its codes back is its own affair (its file may have been dropped), but
  // the rounds' collective calls must not depend on it: the spill writes run in the first pass only.
  auto pass = [&](const char* what, bool pass_one, const std::function<void(const EncodedBatch&)>& use) {
    const bool from_spill = !pass_one && spill != nullptr;
    for (int64_t r = 0; r < rounds; ++r) {
      const int64_t b = b_lo + r;
      const int64_t a = first + b * batch;
      const int64_t n = b < b_hi ? std::min(batch, first + count - a) : 0;
      EncodedBatch eb;
      env.all_or_none([&] {
        if (n == 0) return;
        if (from_spill) {
          eb = spill->read(L);
          return;
        }
        if (n_layers > 1) {
          for (int64_t l = 0; l < n_layers; ++l) {
            (l == 0 ? *reader : *more_[l - 1]).read_rows(a, n, part.data());
            for (int64_t i = 0; i < n; ++i) std::copy_n(&part[i * Dm], Dm, &x[(i * n_layers + l) * Dm]);
          }
        } else {
          reader->read_rows(a, n, x.data());
        }
        if (ck.transcoder) more_.back()->read_rows(a, n, y.data());
        reader->read_tokens(a, n, tokens.data());
      });
      if (n > 0 && !from_spill) eb = passes->encode(x.data(), tokens.data(), a, n, L);
      if (n > 0) use(eb);
      if (pass_one) {
        env.all_or_none([&] {
          if (n == 0 || !spill) return;
          const int64_t need = CodeSpill::record_bytes(eb), free = free_bytes(out_dir);
          std::string why;
          if (spill->bytes() + need > spill_limit)
            why = "its codes would pass stats.scratch_codes_gib (" + format_bytes(spill_limit) + ")";
          else if (free >= 0 && free < need + output_bytes)
            why = "only " + format_bytes(free) + " free beside " + out_dir;
          else if (!spill->write(eb))
            why = spill->error();
          if (why.empty()) return;
          log.rank_info(why + "; the second pass encodes again");
          spill.reset();
        });
      }
      if (n > 0) log.progress(r + 1, b_hi - b_lo, what);
      // A safe point: the passes keep no state on disk, so a stopped stats stage starts again.
      stop_if_interrupted(env, [] { return std::string("nothing new (stats starts its passes again)"); });
    }
    log.end_progress();
  };

  // A transcoder on a synthetic store: the input's covariance (sum x, sum x x^T), for its
  // encoder's match to the true input directions (add_variant_ground_truth).
  const bool want_cov = ck.transcoder && has_ground_truth(store_dir);
  std::vector<double> xx(want_cov ? static_cast<size_t>(D * D + D + 1) : 0, 0.0);
  pass("batches, pass 1/2", true, [&](const EncodedBatch& eb) {
    passes->first_add(ck.transcoder ? y.data() : x.data());
    if (!want_cov || grid.shard() != 0) return;  // a data group's shards read the same rows: one counts
    for (int64_t t = 0; t < eb.n; ++t) {
      const float* r = x.data() + t * D;
      for (int64_t i = 0; i < D; ++i) {
        xx[size_t(D * D + i)] += r[i];
        for (int64_t j = 0; j < D; ++j) xx[size_t(i * D + j)] += double(r[i]) * double(r[j]);
      }
    }
    xx[size_t(D * D + D)] += double(eb.n);
  });
  if (want_cov) env.allreduce_sum(xx.data(), int64_t(xx.size()));
  auto input_covariance = [&] {
    if (!want_cov) return std::vector<double>();
    std::vector<double> c(static_cast<size_t>(D * D));
    const double n = std::max(1.0, xx[size_t(D * D + D)]);
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j < D; ++j)
        c[size_t(i * D + j)] = xx[size_t(i * D + j)] / n - (xx[size_t(D * D + i)] / n) * (xx[size_t(D * D + j)] / n);
    return c;
  };
  passes->first_reduce(env);
  FeatureExamples ex;
  ex.d_sae = F;
  ex.context_before = eo.before;
  ex.context_after = eo.after;
  ex.interval_bins = eo.interval_bins;
  ex.interval_per_bin = eo.interval_bins > 0 ? eo.interval_per_bin : 0;
  ex.top = passes->top_examples(env);

  env.all_or_none([&] {
    if (spill && !spill->rewind()) {
      log.rank_info(spill->error() + "; the second pass encodes again");
      spill.reset();
    }
  });
  // Sharded, encoding is collective over the shard group: all of it reads its codes back or none.
  if (shards_ > 1 && grid.shard_group().allreduce_max(spill ? 0 : 1) != 0) spill.reset();
  pass("batches, pass 2/2", false, [&](const EncodedBatch& eb) { passes->second_add(eb); });
  spill.reset();
  passes->second_reduce(env);
  ex.interval = passes->interval_examples(env);

  SplicedLossSums ce;
  if (model && sc.ce_loss_tokens > 0) {
    const nlohmann::json& src = reader->manifest().source;
    CeLossInput in;
    in.model = model.get();
    in.reader = reader.get();
    in.hook = ck.hook;
    in.first_row = first;
    in.n_rows = count;
    in.rows_per_sequence = L;
    in.bos_excluded = src.value("exclude_bos", false);
    in.bos_token = int32_t(src.value("bos_token", model->bos_token()));
    in.max_tokens = sc.ce_loss_tokens;
    if (ck.transcoder) in.hook = ck.target_hook, in.input_hook = ck.hook;
    if (ck.layers > 1) {
      // A crosscoder would replace every layer it reads in one forward pass; not built yet.
      log.info("CE loss skipped: splicing a crosscoder into the model is not implemented");
    } else if (!ce_splice_problem.empty()) {
      log.info("CE loss skipped: " + ce_splice_problem);
    } else if (in.bos_excluded && !src.value("prepend_bos", false)) {
      log.info("CE loss skipped: the store left out each sequence's first token, which is not a BOS it could restore");
    } else {
      log.info("CE loss recovered on up to " + std::to_string(sc.ce_loss_tokens) + " held-out tokens (" + model_dir + ")" +
               (ck.transcoder ? ", the transcoder in place of the MLP: " + ck.target_hook + " from " + ck.hook : ""));
      ce = heldout_spliced_loss(in, params, cfg, env, &grid);
    }
  }

  // The first data group's shards (rank 0 alone, unsharded) finish their latents' statistics,
  // the decoder's included (neighbours, logit effects, the true features' match), and
  // assemble them in latent order on rank 0, which writes; a failure (a full disk) is agreed on
  // and told once.
  FeatureStats fs;
  GroundTruthMatch match;
  int64_t n_true = 0;
  nlohmann::json variant_gt = nlohmann::json::object();  // add_variant_ground_truth's, on rank 0
  env.all_or_none([&] {
    if (grid.data_group_index() != 0) return;
    const MpiEnv& shards = grid.shard_group();  // this rank alone, unsharded
    passes->finish(fs, sc.dense_threshold, sc.ultralow_threshold, sc.quantiles);
    fs.n_neighbours = std::min<int64_t>(sc.neighbours, F - 1);
    decoder_neighbours(params.W_dec(), Fs, O, fs.n_neighbours, shards, fs.neighbour_index, fs.neighbour_cosine);
    if (model && sc.logit_tokens > 0 && n_layers == 1) {  // a crosscoder's rows span several hooks
      LogitEffects le;
      {
        SingleThreadedBlas one_blas_thread;
        logit_effects(*model, params.W_dec(), Fs, O, std::min<int64_t>(sc.logit_tokens, model->vocab_size()),
                      sc.histogram_bins, le);
      }
      fs.n_logit_tokens = le.n_logit_tokens;
      fs.logit_top_ids = std::move(le.logit_top_ids);
      fs.logit_top_values = std::move(le.logit_top_values);
      fs.logit_bottom_ids = std::move(le.logit_bottom_ids);
      fs.logit_bottom_values = std::move(le.logit_bottom_values);
      fs.logit_hist_counts = std::move(le.logit_hist_counts);
      fs.logit_hist_lo = std::move(le.logit_hist_lo);
      fs.logit_hist_hi = std::move(le.logit_hist_hi);
    }
    if (n_layers > 1) add_decoder_norms_per_layer(params, fs);
    if (has_ground_truth(store_dir)) {
      add_variant_ground_truth(store_dir, ck, params, input_covariance(), shards, variant_gt);
      int64_t gd = 0;
      // The directions the decoder writes: this hook's (a transcoder's target's).
      std::vector<float> gt = read_ground_truth(store_dir, ck.transcoder ? ck.target_hook : ck.hook, &n_true, &gd);
      const int64_t w = O / n_layers;  // a crosscoder's decoder block per hook
      if (gd != w) user_error(store_dir + "/ground_truth.h5: d_model " + std::to_string(gd) + " != " + std::to_string(w));
      std::vector<float> block = n_layers > 1 ? decoder_block(params, 0) : std::vector<float>();
      match = match_ground_truth(gt, n_true, n_layers > 1 ? block.data() : params.W_dec(), Fs, w);
      if (shards.size() > 1) {  // each true feature's best over every shard's latents
        shards.allreduce_max(match.feature_best.data(), n_true);
        summarise_ground_truth_match(match);
      }
      fs.gt_match_index = match.latent_best;
      fs.gt_match_cosine = match.latent_cos;
    }
    if (shards.size() > 1) {
      assemble_shard_stats(shards, fs, sc.histogram_bins);
      assemble_shard_examples(shards, ex.top);
      assemble_shard_examples(shards, ex.interval);
    }
  });
  env.all_or_none([&] {
    if (!env.is_root()) return;
    const ReconstructionSums& rs = passes->recon();
    const double N = double(rs.n_tokens);
    double mean_norm2 = 0;
    for (int64_t d = 0; d < O; ++d) mean_norm2 += std::pow(rs.sums.value(size_t(4 + d)) / N, 2);
    const double sse = rs.sums.value(0), total_var = rs.sums.value(1) - N * mean_norm2;
    int64_t n_dead = 0, n_dense = 0, n_ultralow = 0;
    for (int64_t f = 0; f < F; ++f) n_dead += fs.dead[size_t(f)], n_dense += fs.dense[size_t(f)], n_ultralow += fs.ultralow[size_t(f)];
    nlohmann::json summary = {{"schema", "saepipe.stats.summary"},
                              {"version", 2},
                              {"sae", sae_path},
                              {"store", store_dir},
                              {"hook", ck.hook},
                              {"architecture", ck.architecture},
                              {"n_tokens", count},
                              {"first_token", first},
                              {"sequence_length", L},
                              {"d_in", D},
                              {"d_sae", F},
                              {"k", ck.k},
                              {"mse", sse / (N * double(O))},
                              {"fvu", total_var > 0 ? sse / total_var : 0.0},
                              {"explained_variance", total_var > 0 ? 1.0 - sse / total_var : 0.0},
                              {"cosine", rs.sums.value(3) / N},
                              {"l0", rs.sums.value(2) / N},
                              {"dead_fraction", double(n_dead) / double(F)},
                              {"dense_fraction", double(n_dense) / double(F)},
                              {"ultralow_fraction", double(n_ultralow) / double(F)}};
    if (ck.transcoder || n_layers > 1) add_variant_summary(ck, params, rs, summary);
    if (has_ground_truth(store_dir)) {
      summary["n_true_features"] = n_true;
      summary["mmcs"] = match.mmcs;
      summary["frac_recovered_09"] = match.frac_09;
      summary["frac_recovered_099"] = match.frac_099;
      summary.update(variant_gt);
    }
    add_ce_loss_summary(ce, summary);
    if (!model_dir.empty()) summary["model"] = model_dir;
    summary["resolved_job"] = job.resolved_toml;
    summary["fingerprint"] = fingerprint;
    write_feature_stats(out_dir + "/features.h5", fs, job.resolved_toml);
    write_feature_examples(out_dir + "/examples.h5", ex, job.resolved_toml);
    write_file_atomic(out_dir + "/summary.json", summary.dump(2) + "\n");  // last: marks completion
    std::string line = "fvu " + std::to_string(summary["fvu"].get<double>()) + ", l0 " +
                       std::to_string(summary["l0"].get<double>()) + ", dead " +
                       std::to_string(summary["dead_fraction"].get<double>());
    if (summary.contains("ce_loss_recovered"))
      line += ", CE loss recovered " + std::to_string(summary["ce_loss_recovered"].get<double>()) + ", KL " +
              std::to_string(summary["kl_div"].get<double>());
    if (summary.contains("mmcs")) line += ", MMCS " + std::to_string(summary["mmcs"].get<double>()) +
                                         ", recovered@0.9 " + std::to_string(summary["frac_recovered_09"].get<double>());
    log.info(line);
  });
  env.barrier();
  log.info("wrote " + out_dir + "/summary.json, features.h5 and examples.h5");
}

}  // namespace saepipe
