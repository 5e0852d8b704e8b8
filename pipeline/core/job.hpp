// A job file, validated against schemas/job.schema.json and resolved (all defaults
// filled). Rank 0 reads the file and broadcasts its text; every rank parses the same text.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace saepipe {

class MpiEnv;

struct RunConfig {
  std::string name, dir, device;
  int64_t seed = 0;
};

struct SyntheticConfig {
  int64_t d_model = 0, n_features = 0, seed = 0;
  double mean_active = 0, decay = 0;
  double correlation = 0;  // copula correlation of activity within groups of 8 features
};

struct HarvestConfig {
  std::string source, dtype;
  std::vector<std::string> hooks;
  int64_t n_tokens = 0, context = 0, shard_tokens = 0;
  SyntheticConfig synthetic;
  // source = "model"
  std::string model, tokens, token_format, tokens_dataset;
  bool prepend_bos = true, exclude_bos = false;
  int64_t batch_sequences = 0;
};

struct TrainConfig {
  std::string activations, hook, architecture, b_dec_init;
  int64_t d_sae = 0, k = 0, batch_tokens = 0, n_tokens = 0, auxk = 0, dead_tokens = 0;
  int64_t init_tokens = 0, shuffle_tokens = 0, log_every = 0;
  double lr = 0, adam_beta1 = 0, adam_beta2 = 0, adam_eps = 0, heldout_fraction = 0, auxk_coef = 0;
  // Architectures and recipe (pipeline/sae, pipeline/stages/train.cpp).
  std::string input_scaling;
  double l1_coef = 0, l1_warmup_fraction = 0, l0_coef = 0, jumprelu_bandwidth = 0, jumprelu_threshold_init = 0;
  double lr_decay_fraction = 0, grad_clip = 0;
  int64_t lr_warmup_steps = 0, checkpoint_every = 0, resample_every = 0;
  // [[train.sweep]]: more models from the same data, each a copy of these settings with some
  // overridden; sweep_name is set in the copies (and empty in the main one).
  std::vector<TrainConfig> sweep;
  std::string sweep_name;
};

struct StatsConfig {
  std::string activations, sae;
  int64_t n_tokens = 0, batch_tokens = 0;
  int64_t top_examples = 0, interval_bins = 0, interval_examples = 0, context_before = 0, context_after = 0;
  int64_t histogram_bins = 0, neighbours = 0, logit_tokens = 0, seed = 0, ce_loss_tokens = 0;
  std::vector<double> quantiles;
  double dense_threshold = 0, ultralow_threshold = 0;
  bool scratch_codes = true;
  double scratch_codes_gib = 8;
};

struct InterpretConfig {
  std::string stats;
  int64_t max_features = 0;
  bool neuronpedia = true;
  int64_t neuronpedia_batch_size = 128;
  std::string neuronpedia_model_id, neuronpedia_sae_set;
};

struct StageResources {
  int64_t ranks = 1, nodes = 1, gpus_per_node = 0, cpus_per_task = 1;
  std::string time, partition, account, launcher;
};

struct Job {
  std::string path;           // where it was read from (for messages)
  std::string resolved_toml;  // every key, defaults filled: stored in every output
  // Resolved text of each top-level section ("run", "harvest", "train", ...), so a stage can
  // tell whether its own settings changed since an earlier run.
  std::map<std::string, std::string> section_toml;
  RunConfig run;
  HarvestConfig harvest;
  TrainConfig train;
  StatsConfig stats;
  InterpretConfig interpret;
  StageResources resources_harvest, resources_train, resources_stats, resources_interpret;

  // Derived paths (relative paths are taken from the current directory).
  std::string run_dir() const;
  std::string store_dir() const;      // the store train reads
  std::string stats_store_dir() const;
  std::string sae_dir() const;        // this run's SAE output directory
  std::string sae_path() const;       // the sae.h5 stats reads
  std::string stats_dir() const;      // the stats directory interpret reads
  std::string interpret_dir() const;
  const StageResources& resources(const std::string& stage) const;
};

// Parse and validate job text; `path` names it in messages. Throws user_error (exit 2) with
// one line "PATH:LINE: key: what is wrong". Pure: no file system access.
Job parse_job(const std::string& text, const std::string& path);

// Read (rank 0) + broadcast + parse on every rank; errors are raised on every rank alike.
// Input paths the job names for `stage` must exist.
Job load_job(const MpiEnv& env, const std::string& path, const std::string& stage);

// Read and parse on one process (the driver). "-" or "" means the embedded quickstart.
// Input paths named for `stages` must exist unless an earlier one of them produces them.
Job load_job_serial(const std::string& path,
                    const std::vector<std::string>& stages = {"harvest", "train", "stats", "interpret"});

// Write runs/<name>/job.resolved.toml atomically (temporary name, then rename).
void write_resolved_job(const Job& job);

}  // namespace saepipe
