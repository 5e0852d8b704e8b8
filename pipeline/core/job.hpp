// A job file, validated against schemas/job.schema.json and resolved (all defaults
// filled). Rank 0 reads the file and broadcasts its text; every rank parses the same text.
//
// How to add a job key (two places):
//   1. schemas/job.schema.json: the key under its section with type, bounds, default and a
//      description. Under [train], "sweepable": true also allows it in [[train.sweep]] entries
//      (with the same type and bounds; an entry that leaves it out keeps the main model's).
//   2. here: the member in its section's struct and one line in that struct's `keys` table,
//      (schema name, &Struct::member). parse_job fills every member from the resolved job by
//      this table, and a sweep entry overrides by the same table.
// A schema key without a table line (or the reverse) is an internal error at the first parse,
// so the unit tests catch a half-added key. A new section: a struct with `keys`, a member of
// Job, and one read_section call in parse_job. Checks between keys go to check_cross_fields
// (job.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace saepipe {

class MpiEnv;

// One row of a section's key table: the key's name in the schema and the member it fills.
template <class Section>
struct JobKey {
  const char* name;
  std::variant<std::string Section::*, int64_t Section::*, double Section::*, bool Section::*,
               std::vector<std::string> Section::*, std::vector<int64_t> Section::*,
               std::vector<double> Section::*, std::optional<bool> Section::*>
      member;  // optional<bool>: true, false or "auto" (nullopt)
};
template <class Section>
using JobKeys = std::vector<JobKey<Section>>;

struct RunConfig {
  std::string name, dir, device;
  int64_t seed = 0;

  static inline const JobKeys<RunConfig> keys = {
      {"name", &RunConfig::name}, {"dir", &RunConfig::dir}, {"seed", &RunConfig::seed},
      {"device", &RunConfig::device}};
};

struct SyntheticConfig {
  int64_t d_model = 0, n_features = 0, seed = 0;
  double mean_active = 0, decay = 0;
  double correlation = 0;  // copula correlation of activity within groups of 8 features
  // Ground truth for absorption, transcoders and crosscoders (pipeline/model/synthetic.hpp).
  int64_t children = 0;          // children per parent feature (0: no hierarchy)
  double child_probability = 0;  // P(one child active | its parent active)
  std::string child_coefficient;  // "own" | "parent": an active child's coefficient
  double hook_similarity = 0, hook_noise = 0, hook_linear = 0, hook_absent = 0;  // hooks after the first

  static inline const JobKeys<SyntheticConfig> keys = {
      {"d_model", &SyntheticConfig::d_model},
      {"n_features", &SyntheticConfig::n_features},
      {"mean_active", &SyntheticConfig::mean_active},
      {"decay", &SyntheticConfig::decay},
      {"correlation", &SyntheticConfig::correlation},
      {"seed", &SyntheticConfig::seed},
      {"children", &SyntheticConfig::children},
      {"child_probability", &SyntheticConfig::child_probability},
      {"child_coefficient", &SyntheticConfig::child_coefficient},
      {"hook_similarity", &SyntheticConfig::hook_similarity},
      {"hook_noise", &SyntheticConfig::hook_noise},
      {"hook_linear", &SyntheticConfig::hook_linear},
      {"hook_absent", &SyntheticConfig::hook_absent}};
};

struct HarvestConfig {
  std::string source, dtype;
  std::vector<std::string> hooks;
  int64_t n_tokens = 0, context = 0, shard_tokens = 0;
  SyntheticConfig synthetic;  // [harvest.synthetic]
  // source = "model"
  std::string model, tokens, token_format, tokens_dataset;
  // prepend_bos: nullopt is "auto", the model's tokenizer decides (resolve_prepend_bos,
  // pipeline/stages/resolve_bos.hpp, puts the decision here and in the resolved job), with
  // bos_token the id it prepends (-1: config.json's bos_token_id, when the user set true).
  std::optional<bool> prepend_bos;
  int64_t bos_token = -1;  // not a job key
  bool exclude_bos = false;
  int64_t batch_sequences = 0;

  static inline const JobKeys<HarvestConfig> keys = {
      {"source", &HarvestConfig::source},
      {"model", &HarvestConfig::model},
      {"tokens", &HarvestConfig::tokens},
      {"token_format", &HarvestConfig::token_format},
      {"tokens_dataset", &HarvestConfig::tokens_dataset},
      {"prepend_bos", &HarvestConfig::prepend_bos},
      {"exclude_bos", &HarvestConfig::exclude_bos},
      {"batch_sequences", &HarvestConfig::batch_sequences},
      {"hooks", &HarvestConfig::hooks},
      {"n_tokens", &HarvestConfig::n_tokens},
      {"context", &HarvestConfig::context},
      {"shard_tokens", &HarvestConfig::shard_tokens},
      {"dtype", &HarvestConfig::dtype}};
};

struct TrainConfig {
  std::string activations, hook, architecture, b_dec_init;
  std::string target_hook;         // transcoders: the hook reconstructed from `hook`
  bool skip = false;               // transcoders: the learned linear skip
  std::vector<std::string> hooks;  // crosscoders: the hooks read side by side
  int64_t d_sae = 0, k = 0, batch_tokens = 0, n_tokens = 0, auxk = 0, dead_tokens = 0;
  int64_t init_tokens = 0, shuffle_tokens = 0, log_every = 0;
  double lr = 0, adam_beta1 = 0, adam_beta2 = 0, adam_eps = 0, heldout_fraction = 0, auxk_coef = 0;
  // Architectures and recipe (pipeline/sae, pipeline/stages/train.cpp).
  std::string input_scaling, precision;
  double l1_coef = 0, l1_warmup_fraction = 0, l0_coef = 0, jumprelu_bandwidth = 0, jumprelu_threshold_init = 0;
  double target_l0 = 0;  // relu/jumprelu: > 0 adapts l1_coef / l0_coef to this L0
  double threshold_lr_scale = 0;  // jumprelu: log_threshold learns at lr * this
  double lr_decay_fraction = 0, grad_clip = 0;
  int64_t lr_warmup_steps = 0, checkpoint_every = 0, resample_every = 0;
  std::vector<int64_t> matryoshka_prefixes;  // empty: the default nesting (train_model.cpp)
  // [[train.sweep]]: more models from the same data, each a copy of these settings with some
  // overridden; sweep_name is set in the copies (and empty in the main one).
  std::vector<TrainConfig> sweep;
  std::string sweep_name;

  static inline const JobKeys<TrainConfig> keys = {
      {"activations", &TrainConfig::activations},
      {"hook", &TrainConfig::hook},
      {"target_hook", &TrainConfig::target_hook},
      {"skip", &TrainConfig::skip},
      {"hooks", &TrainConfig::hooks},
      {"architecture", &TrainConfig::architecture},
      {"d_sae", &TrainConfig::d_sae},
      {"k", &TrainConfig::k},
      {"lr", &TrainConfig::lr},
      {"adam_beta1", &TrainConfig::adam_beta1},
      {"adam_beta2", &TrainConfig::adam_beta2},
      {"adam_eps", &TrainConfig::adam_eps},
      {"batch_tokens", &TrainConfig::batch_tokens},
      {"n_tokens", &TrainConfig::n_tokens},
      {"heldout_fraction", &TrainConfig::heldout_fraction},
      {"auxk", &TrainConfig::auxk},
      {"auxk_coef", &TrainConfig::auxk_coef},
      {"dead_tokens", &TrainConfig::dead_tokens},
      {"b_dec_init", &TrainConfig::b_dec_init},
      {"init_tokens", &TrainConfig::init_tokens},
      {"shuffle_tokens", &TrainConfig::shuffle_tokens},
      {"log_every", &TrainConfig::log_every},
      {"l1_coef", &TrainConfig::l1_coef},
      {"l1_warmup_fraction", &TrainConfig::l1_warmup_fraction},
      {"l0_coef", &TrainConfig::l0_coef},
      {"target_l0", &TrainConfig::target_l0},
      {"jumprelu_bandwidth", &TrainConfig::jumprelu_bandwidth},
      {"jumprelu_threshold_init", &TrainConfig::jumprelu_threshold_init},
      {"threshold_lr_scale", &TrainConfig::threshold_lr_scale},
      {"input_scaling", &TrainConfig::input_scaling},
      {"lr_warmup_steps", &TrainConfig::lr_warmup_steps},
      {"lr_decay_fraction", &TrainConfig::lr_decay_fraction},
      {"grad_clip", &TrainConfig::grad_clip},
      {"precision", &TrainConfig::precision},
      {"checkpoint_every", &TrainConfig::checkpoint_every},
      {"resample_every", &TrainConfig::resample_every},
      {"matryoshka_prefixes", &TrainConfig::matryoshka_prefixes}};
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

  static inline const JobKeys<StatsConfig> keys = {
      {"activations", &StatsConfig::activations},
      {"sae", &StatsConfig::sae},
      {"n_tokens", &StatsConfig::n_tokens},
      {"batch_tokens", &StatsConfig::batch_tokens},
      {"top_examples", &StatsConfig::top_examples},
      {"interval_bins", &StatsConfig::interval_bins},
      {"interval_examples", &StatsConfig::interval_examples},
      {"context_before", &StatsConfig::context_before},
      {"context_after", &StatsConfig::context_after},
      {"histogram_bins", &StatsConfig::histogram_bins},
      {"quantiles", &StatsConfig::quantiles},
      {"dense_threshold", &StatsConfig::dense_threshold},
      {"ultralow_threshold", &StatsConfig::ultralow_threshold},
      {"neighbours", &StatsConfig::neighbours},
      {"logit_tokens", &StatsConfig::logit_tokens},
      {"seed", &StatsConfig::seed},
      {"scratch_codes", &StatsConfig::scratch_codes},
      {"scratch_codes_gib", &StatsConfig::scratch_codes_gib},
      {"ce_loss_tokens", &StatsConfig::ce_loss_tokens}};
};

struct InterpretConfig {
  std::string stats;
  int64_t max_features = 0;
  bool neuronpedia = true;
  int64_t neuronpedia_batch_size = 128;
  std::string neuronpedia_model_id, neuronpedia_sae_set;

  static inline const JobKeys<InterpretConfig> keys = {
      {"stats", &InterpretConfig::stats},
      {"max_features", &InterpretConfig::max_features},
      {"neuronpedia", &InterpretConfig::neuronpedia},
      {"neuronpedia_batch_size", &InterpretConfig::neuronpedia_batch_size},
      {"neuronpedia_model_id", &InterpretConfig::neuronpedia_model_id},
      {"neuronpedia_sae_set", &InterpretConfig::neuronpedia_sae_set}};
};

// [resources.<stage>], one per stage (schema: #/$defs/resources).
struct StageResources {
  int64_t ranks = 1, nodes = 1, gpus_per_node = 0, cpus_per_task = 1;
  int64_t signal_grace = 120, max_requeues = 3;  // seconds; SLURM requeues of the stage
  int64_t latent_shards = 1;  // train: S latent shards per data group (pipeline/core/latent_grid.hpp)
  std::string time, partition, account, launcher;

  static inline const JobKeys<StageResources> keys = {
      {"ranks", &StageResources::ranks},         {"nodes", &StageResources::nodes},
      {"gpus_per_node", &StageResources::gpus_per_node}, {"cpus_per_task", &StageResources::cpus_per_task},
      {"time", &StageResources::time},           {"partition", &StageResources::partition},
      {"account", &StageResources::account},     {"launcher", &StageResources::launcher},
      {"signal_grace", &StageResources::signal_grace}, {"max_requeues", &StageResources::max_requeues},
      {"latent_shards", &StageResources::latent_shards}};
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
  StageResources& resources_for(const std::string& stage);
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

// The device the ranks agreed on for run.device (pipeline/stages/backend.hpp) replaces "auto"
// in job.run.device, the resolved text and section_toml["run"].
void set_resolved_device(Job& job, const std::string& device);

// harvest.prepend_bos = "auto" decided (pipeline/stages/resolve_bos.hpp): job.harvest and the
// resolved text and section_toml["harvest"] say `prepend`; bos_token is the id prepended.
void set_resolved_prepend_bos(Job& job, bool prepend, int64_t bos_token);

// Write runs/<name>/job.resolved.toml atomically (temporary name, then rename).
void write_resolved_job(const Job& job);

}  // namespace saepipe
