#include "pipeline/core/job.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <utility>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/core/toml_schema.hpp"

namespace saepipe {
namespace {

using nlohmann::json;

// ---- the key tables (job.hpp) applied to the resolved TOML

// False when the validated node is not of the member's type (the schema and job.hpp disagree).
template <class T>
bool assign(const toml::node& n, T& v) {
  if constexpr (std::is_same_v<T, double>) {
    if (!n.is_number()) return false;
    v = *n.value<double>();  // integers in arrays of numbers are not converted by the validator
    return true;
  }
  auto x = n.value_exact<T>();
  if (x) v = *x;
  return bool(x);
}
// true, false or "auto" (nullopt).
bool assign(const toml::node& n, std::optional<bool>& v) {
  if (auto b = n.value_exact<bool>()) {
    v = *b;
    return true;
  }
  v.reset();
  return n.value_exact<std::string>() == std::optional<std::string>("auto");
}
template <class T>
bool assign(const toml::node& n, std::vector<T>& v) {
  const toml::array* a = n.as_array();
  if (!a) return false;
  v.clear();
  for (const toml::node& e : *a)
    if (!assign(e, v.emplace_back())) return false;
  return true;
}

// Fills `out` from the keys of `table` (a validated section at `where`) that its key table
// names; with `all`, every table key must be there (defaults filled) and every key of the
// section must be in the table, except the sub-sections listed in `nested`.
template <class S>
void read_section(const toml::table& table, const std::string& where, S& out, bool all,
                  const std::vector<std::string>& nested = {}) {
  for (const JobKey<S>& k : S::keys) {
    const toml::node* n = table.get(k.name);
    if (!n) {
      if (all) internal_error("job.hpp: " + where + "." + k.name + " is not in job.schema.json or has no default there");
      continue;
    }
    if (!std::visit([&](auto member) { return assign(*n, out.*member); }, k.member))
      internal_error("job.hpp: " + where + "." + k.name + ": the member's type is not the schema's");
  }
  for (auto&& [name, node] : table) {
    const std::string key(name.str());
    const bool known = std::any_of(S::keys.begin(), S::keys.end(), [&](const JobKey<S>& k) { return key == k.name; }) ||
                       std::find(nested.begin(), nested.end(), key) != nested.end();
    if (!known) internal_error("job.schema.json: " + where + "." + key + " has no line in its key table (job.hpp)");
  }
}

const toml::table& section(const toml::table& t, const char* dotted) {
  const toml::table* s = t.at_path(dotted).as_table();
  if (!s) internal_error(std::string("resolved job lacks [") + dotted + "]");
  return *s;
}

// [[train.sweep]] entries accept the train keys marked "sweepable", with their types and
// bounds but no defaults (what an entry leaves out is the main model's).
void add_sweep_keys(json& schema) {
  json& train = schema["properties"]["train"]["properties"];
  json& entry = train["sweep"]["items"]["properties"];
  for (auto& [name, prop] : train.items()) {
    if (!prop.value("sweepable", false)) continue;
    json p = prop;
    p.erase("default");
    p.erase("sweepable");
    entry[name] = p;
  }
}

// Train keys whose default depends on the model's other settings (schema: no "default", the rule
// in its description). Filled after the schema's defaults, for the main [train] model and for
// every [[train.sweep]] entry, so the resolved job states each model's value: an entry that
// leaves the key out takes the main model's value when [train] gave one, else its own derived
// value (an entry with another d_sae gets another lr).
//
// lr (Adam): 2e-4 / sqrt(d_sae / 16384) (Gao et al. 2024, as sparsify), times sqrt(768 / d_in)
// when the input rows are narrower than 768 (GPT-2 small's width): Adam moves every coordinate
// by about lr, so a unit-norm row of d_in coordinates turns by about lr * sqrt(d_in) per step;
// the factor keeps that angle at its d_in-768 size (toy stores, d_in 32-256, otherwise learn too
// slowly: bench/defaults_grid.py). Wider inputs keep the rule as it is. d_in = 0: not known.
double derived_lr(int64_t d_sae, int64_t d_in) {
  const double lr = 2e-4 / std::sqrt(double(d_sae) / 16384.0);
  return d_in > 0 && d_in < 768 ? lr * std::sqrt(768.0 / double(d_in)) : lr;
}

// The width of the rows train reads when the job states it: this run's synthetic store's
// d_model, or the d_model in the manifest.json of the store train.activations names (when it
// exists), times the crosscoder's hooks; 0 when not known (a model's store not harvested yet).
int64_t known_d_in(const toml::table& t) {
  const toml::table& train = *t.at_path("train").as_table();
  const std::string store = train["activations"].value_or(std::string());
  int64_t d_model = 0;
  if (store.empty()) {
    if (t.at_path("harvest.source").value_or(std::string()) == "synthetic")
      d_model = t.at_path("harvest.synthetic.d_model").value_or(int64_t(0));
  } else {
    std::ifstream in(store + "/manifest.json");
    const json m = json::parse(in, nullptr, false);
    if (!m.is_discarded() && m.is_object() && m.contains("d_model") && m["d_model"].is_number_integer())
      d_model = m["d_model"].get<int64_t>();
  }
  const toml::array* hooks = train["hooks"].as_array();
  return d_model * std::max<int64_t>(1, hooks ? int64_t(hooks->size()) : 1);
}

//
// target_l0 (relu, jumprelu, gated): the model's k when the job gives neither target_l0 nor the
// model's sparsity coefficient (l1_coef for relu and gated, l0_coef for jumprelu), else 0 (a
// fixed coefficient). `given` is the job as written, before the schema's defaults were filled.
double derived_target_l0(const std::string& arch, int64_t k, bool l1_given, bool l0_given) {
  if (arch == "relu" || arch == "gated") return l1_given ? 0.0 : double(k);
  if (arch == "jumprelu") return l0_given ? 0.0 : double(k);
  return 0.0;
}

//
// dead_tokens and resample_every (batchtopk, jumprelu): a batch-wide threshold gives a latent that
// points nowhere useful no slot of its own (topk's k per token do), so such latents stay unused and
// the rarer true features get none; a jumprelu latent whose threshold rose above its inputs gets
// no gradient again. Anthropic's resampling (every 50 steps, of the latents silent for 1% of the
// run, at least 4 batches and at most Gao et al.'s 10M tokens) turns them toward badly
// reconstructed inputs. AuxK alone with that window did not (bench/defaults_grid.py). Matryoshka
// would gain as much MMCS but loses its low absorption (e2e_toy_variants: 0.04 -> 0.48), so it and
// the others keep 10M and no resampling (Gao et al.'s recipe); a transcoder cannot resample.
bool resamples_by_default(const std::string& arch, bool transcoder) {
  return !transcoder && (arch == "batchtopk" || arch == "jumprelu");
}
int64_t derived_dead_tokens(const std::string& arch, bool transcoder, int64_t n_tokens, int64_t batch_tokens) {
  const int64_t gao = 10000000;
  if (!resamples_by_default(arch, transcoder)) return gao;
  return std::min(gao, std::max(n_tokens / 100, 4 * batch_tokens));
}

void fill_derived_defaults(toml::table& t, const toml::table& given) {
  toml::table& train = *t.at_path("train").as_table();
  const toml::table* given_train = given["train"].as_table();
  auto main_given = [&](const char* key) { return given_train && given_train->contains(key); };
  const int64_t main_d_sae = *train["d_sae"].value<int64_t>();
  const bool main_lr = train.contains("lr");
  const int64_t d_in = known_d_in(t);
  if (!main_lr) train.insert_or_assign("lr", derived_lr(main_d_sae, d_in));
  const std::string main_arch = *train["architecture"].value<std::string>();
  const int64_t main_k = *train["k"].value<int64_t>();
  const bool main_target = main_given("target_l0");
  if (!main_target)
    train.insert_or_assign("target_l0", derived_target_l0(main_arch, main_k, main_given("l1_coef"), main_given("l0_coef")));
  const bool transcoder = !train["target_hook"].value_or(std::string()).empty();
  const int64_t n_tokens = *train["n_tokens"].value<int64_t>(), batch_tokens = *train["batch_tokens"].value<int64_t>();
  const bool main_dead = main_given("dead_tokens"), main_resample = main_given("resample_every");
  if (!main_dead) train.insert_or_assign("dead_tokens", derived_dead_tokens(main_arch, transcoder, n_tokens, batch_tokens));
  if (!main_resample) train.insert_or_assign("resample_every", int64_t(resamples_by_default(main_arch, transcoder) ? 50 : 0));
  for (toml::node& e : *train["sweep"].as_array()) {
    toml::table& entry = *e.as_table();
    const std::string arch = entry["architecture"].value_or(main_arch);
    if (!main_dead && !entry.contains("dead_tokens"))
      entry.insert_or_assign("dead_tokens", derived_dead_tokens(arch, transcoder, n_tokens, batch_tokens));
    if (!main_resample && !entry.contains("resample_every"))
      entry.insert_or_assign("resample_every", int64_t(resamples_by_default(arch, transcoder) ? 50 : 0));
    if (!main_lr && !entry.contains("lr")) entry.insert_or_assign("lr", derived_lr(entry["d_sae"].value_or(main_d_sae), d_in));
    if (!main_target && !entry.contains("target_l0"))
      entry.insert_or_assign("target_l0", derived_target_l0(entry["architecture"].value_or(main_arch), entry["k"].value_or(main_k),
                                                            main_given("l1_coef") || entry.contains("l1_coef"),
                                                            main_given("l0_coef") || entry.contains("l0_coef")));
  }
}

// job.resolved_toml and job.section_toml from the resolved table.
void set_resolved_text(Job& job, const toml::table& t) {
  std::ostringstream out;
  out << "# saepipe resolved job (every default filled)\n" << t << "\n";
  job.resolved_toml = out.str();
  job.section_toml.clear();
  for (auto&& [k, node] : t) {
    std::ostringstream sec;
    if (auto* sub = node.as_table()) sec << *sub;
    job.section_toml[std::string(k.str())] = sec.str();
  }
}

// Checks between keys that a per-key schema cannot express.
void check_cross_fields(const Job& job, const toml::table& t) {
  auto fail = [&](const char* key, const std::string& what) {
    uint32_t line = 0;
    if (auto n = t.at_path(key); n.node()) line = n.node()->source().begin.line;
    std::string where = job.path + (line ? ":" + std::to_string(line) : "");
    user_error(where + ": " + key + ": " + what);
  };
  const auto& h = job.harvest;
  if (h.shard_tokens % h.context != 0)
    fail("harvest.shard_tokens", "must be a multiple of harvest.context (" + std::to_string(h.context) +
                                     ") so that sequences never straddle shards, got " + std::to_string(h.shard_tokens));
  if (h.n_tokens % h.context != 0)
    fail("harvest.n_tokens", "must be a multiple of harvest.context (" + std::to_string(h.context) + "), got " +
                                 std::to_string(h.n_tokens));
  for (size_t i = 0; i < h.hooks.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (h.hooks[i] == h.hooks[j]) fail("harvest.hooks", "hook \"" + h.hooks[i] + "\" is listed twice");
  if (h.source == "model" && h.model.empty()) fail("harvest.model", "source = \"model\" needs a model directory");
  if (h.source == "model" && h.tokens.empty()) fail("harvest.tokens", "source = \"model\" needs a token file");
  if (h.exclude_bos && h.context < 2) fail("harvest.exclude_bos", "needs context >= 2");
  const auto& tr = job.train;
  if (tr.k > tr.d_sae)
    fail("train.k", "must be <= train.d_sae (" + std::to_string(tr.d_sae) + "), got " + std::to_string(tr.k));
  // matryoshka_prefixes: strictly increasing sizes within [1, d_sae] (d_sae appended when left out).
  auto check_prefixes = [&](const TrainConfig& v, const std::string& key) {
    const std::vector<int64_t>& m = v.matryoshka_prefixes;
    for (size_t j = 0; j < m.size(); ++j)
      if (m[j] > v.d_sae || (j > 0 && m[j] <= m[j - 1]))
        fail(key.c_str(), "must be strictly increasing sizes <= d_sae (" + std::to_string(v.d_sae) + "), got " +
                              std::to_string(m[j]) + " at position " + std::to_string(j));
  };
  check_prefixes(tr, "train.matryoshka_prefixes");
  for (size_t i = 0; i < tr.sweep.size(); ++i) {
    const TrainConfig& v = tr.sweep[i];
    const std::string key = "train.sweep[" + std::to_string(i) + "]";
    if (v.k > v.d_sae)
      fail((key + ".k").c_str(), "must be <= its d_sae (" + std::to_string(v.d_sae) + "), got " + std::to_string(v.k));
    check_prefixes(v, key + ".matryoshka_prefixes");
    for (size_t j = 0; j < i; ++j)
      if (tr.sweep[j].sweep_name == v.sweep_name) fail((key + ".name").c_str(), "\"" + v.sweep_name + "\" is used twice");
  }
  auto in_harvest = [&](const std::string& hook) {
    return std::find(h.hooks.begin(), h.hooks.end(), hook) != h.hooks.end();
  };
  if (!tr.hook.empty() && tr.activations.empty() && !in_harvest(tr.hook))
    fail("train.hook", "\"" + tr.hook + "\" is not among harvest.hooks");
  // Transcoders (target_hook) and crosscoders (hooks).
  if (!tr.target_hook.empty() && tr.activations.empty() && !in_harvest(tr.target_hook))
    fail("train.target_hook", "\"" + tr.target_hook + "\" is not among harvest.hooks");
  if (!tr.target_hook.empty() && tr.target_hook == tr.hook)
    fail("train.target_hook", "is train.hook itself; a transcoder reconstructs another hook");
  auto check_skip = [&](const TrainConfig& v, const std::string& key) {
    if (v.skip && tr.target_hook.empty()) fail(key.c_str(), "a skip connection needs a transcoder (train.target_hook)");
    if (!tr.target_hook.empty() && v.resample_every > 0)
      fail("train.resample_every", "resampling is not implemented for transcoders (set 0)");
  };
  check_skip(tr, "train.skip");
  for (size_t i = 0; i < tr.sweep.size(); ++i) check_skip(tr.sweep[i], "train.sweep[" + std::to_string(i) + "].skip");
  if (!tr.hooks.empty()) {
    if (tr.hooks.size() < 2) fail("train.hooks", "a crosscoder reads two or more hooks; for one, set train.hook");
    if (!tr.hook.empty() || !tr.target_hook.empty())
      fail("train.hooks", "a crosscoder's hooks replace train.hook and train.target_hook; leave those out");
    for (size_t i = 0; i < tr.hooks.size(); ++i) {
      if (tr.activations.empty() && !in_harvest(tr.hooks[i]))
        fail("train.hooks", "\"" + tr.hooks[i] + "\" is not among harvest.hooks");
      for (size_t j = 0; j < i; ++j)
        if (tr.hooks[i] == tr.hooks[j]) fail("train.hooks", "hook \"" + tr.hooks[i] + "\" is listed twice");
    }
  }
  // Latent sharding: equal latent ranges (the rank count is checked when train starts).
  const int64_t S = job.resources_train.latent_shards;
  auto check_shards = [&](int64_t d_sae, const std::string& which) {
    const std::string key = "resources.train.latent_shards";
    if (S > d_sae)
      fail(key.c_str(), "= " + std::to_string(S) + " is more than " + which + " = " + std::to_string(d_sae));
    if (d_sae % S != 0)
      fail(key.c_str(), "= " + std::to_string(S) + " does not divide " + which + " = " + std::to_string(d_sae) +
                            " (every shard holds d_sae / latent_shards latents)");
  };
  check_shards(tr.d_sae, "train.d_sae");
  for (size_t i = 0; i < tr.sweep.size(); ++i)
    check_shards(tr.sweep[i].d_sae, "train.sweep[" + std::to_string(i) + "].d_sae");
  for (const char* stage : {"harvest", "interpret"})
    if (job.resources(stage).latent_shards != 1)
      fail(("resources." + std::string(stage) + ".latent_shards").c_str(),
           "only [resources.train] and [resources.stats] shard latents; must be 1");
}

}  // namespace

Job parse_job(const std::string& text, const std::string& path) {
  toml::table t;
  try {
    t = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    user_error(path + ":" + std::to_string(e.source().begin.line) + ": TOML syntax error: " +
               std::string(e.description()));
  }
  json schema = json::parse(embedded_resource("job.schema.json"));
  add_sweep_keys(schema);
  const toml::table given = t;
  validate_toml(t, schema, path);
  fill_derived_defaults(t, given);

  Job job;
  job.path = path;
  read_section(section(t, "run"), "run", job.run, true);
  read_section(section(t, "harvest"), "harvest", job.harvest, true, {"synthetic"});
  read_section(section(t, "harvest.synthetic"), "harvest.synthetic", job.harvest.synthetic, true);
  read_section(section(t, "train"), "train", job.train, true, {"sweep"});
  for (const toml::node& e : *t.at_path("train.sweep").as_array()) {
    TrainConfig v = job.train;
    v.sweep.clear();
    const toml::table& entry = *e.as_table();
    v.sweep_name = *entry["name"].value<std::string>();
    read_section(entry, "train.sweep", v, false, {"name"});
    job.train.sweep.push_back(std::move(v));
  }
  read_section(section(t, "stats"), "stats", job.stats, true);
  read_section(section(t, "interpret"), "interpret", job.interpret, true);
  const std::vector<std::string> stages = {"harvest", "train", "stats", "interpret"};
  for (const std::string& stage : stages)
    read_section(section(t, ("resources." + stage).c_str()), "resources." + stage, job.resources_for(stage), true);
  // Every section of the schema is read above.
  const std::vector<std::string> sections = {"run", "harvest", "train", "stats", "interpret", "resources"};
  auto listed = [](const std::vector<std::string>& v, const toml::key& k) {
    return std::find(v.begin(), v.end(), std::string(k.str())) != v.end();
  };
  for (auto&& [name, node] : t)
    if (!listed(sections, name)) internal_error("job.schema.json: [" + std::string(name.str()) + "] is not read by parse_job");
  for (auto&& [name, node] : section(t, "resources"))
    if (!listed(stages, name))
      internal_error("job.schema.json: [resources." + std::string(name.str()) + "] is not read by parse_job");

  check_cross_fields(job, t);
  set_resolved_text(job, t);
  return job;
}

void set_resolved_device(Job& job, const std::string& device) {
  toml::table t = toml::parse(job.resolved_toml, job.path);
  t.at_path("run").as_table()->insert_or_assign("device", device);
  job.run.device = device;
  set_resolved_text(job, t);
}

void set_resolved_prepend_bos(Job& job, bool prepend, int64_t bos_token) {
  toml::table t = toml::parse(job.resolved_toml, job.path);
  t.at_path("harvest").as_table()->insert_or_assign("prepend_bos", prepend);
  job.harvest.prepend_bos = prepend;
  job.harvest.bos_token = bos_token;
  set_resolved_text(job, t);
}

namespace {

std::string read_job_text(const std::string& path) {
  if (path.empty() || path == "-") return embedded_resource("quickstart.toml");
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) user_error(path + ": job file not found");
  if (std::filesystem::is_directory(path, ec)) user_error(path + ": is a directory, not a job file");
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(path + ": cannot open job file for reading");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string display_path(const std::string& path) {
  return (path.empty() || path == "-") ? std::string("<embedded quickstart.toml>") : path;
}

// Input paths the user named must exist, unless a stage that runs before, in the same
// invocation, produces exactly that path.
void check_input_paths(const Job& job, const std::vector<std::string>& stages) {
  auto runs = [&](const char* s) { return std::find(stages.begin(), stages.end(), s) != stages.end(); };
  auto same = [](const std::string& a, const std::string& b) {
    return std::filesystem::absolute(a).lexically_normal() == std::filesystem::absolute(b).lexically_normal();
  };
  auto need = [&](const char* stage, const char* key, const std::string& value, const char* what,
                  const char* producer, const std::string& produced) {
    if (value.empty() || !runs(stage)) return;
    if (runs(producer) && same(value, produced)) return;
    std::error_code ec;
    if (!std::filesystem::exists(value, ec))
      user_error(job.path + ": " + key + ": " + what + " \"" + value + "\" does not exist");
  };
  const std::string store = job.run_dir() + "/activations";
  need("train", "train.activations", job.train.activations, "activation store", "harvest", store);
  if (job.harvest.source == "model") {
    need("harvest", "harvest.model", job.harvest.model, "model directory", "", "");
    need("harvest", "harvest.tokens", job.harvest.tokens, "token file", "", "");
  }
  need("stats", "stats.activations", job.stats.activations, "activation store", "harvest", store);
  need("stats", "stats.sae", job.stats.sae, "SAE checkpoint", "train", job.sae_dir() + "/sae.h5");
  need("interpret", "interpret.stats", job.interpret.stats, "stats directory", "stats", job.run_dir() + "/stats");
}

}  // namespace

Job load_job_serial(const std::string& path, const std::vector<std::string>& stages) {
  Job job = parse_job(read_job_text(path), display_path(path));
  check_input_paths(job, stages);
  return job;
}

Job load_job(const MpiEnv& env, const std::string& path, const std::string& stage) {
  std::string text = env.broadcast_from_root([&] { return read_job_text(path); });
  Job job;
  env.all_or_none([&] {
    job = parse_job(text, display_path(path));
    check_input_paths(job, {stage});
  });
  return job;
}

// Lexically normalised ("a/b/../c" is "a/c"), so no directory outside the run's is created on
// the way to it.
std::string Job::run_dir() const {
  return run.dir.empty() ? "runs/" + run.name : std::filesystem::path(run.dir).lexically_normal().string();
}
std::string Job::store_dir() const { return train.activations.empty() ? run_dir() + "/activations" : train.activations; }
std::string Job::stats_store_dir() const { return stats.activations.empty() ? store_dir() : stats.activations; }
std::string Job::sae_dir() const { return run_dir() + "/sae"; }
std::string Job::sae_path() const { return stats.sae.empty() ? sae_dir() + "/sae.h5" : stats.sae; }
std::string Job::stats_dir() const { return interpret.stats.empty() ? run_dir() + "/stats" : interpret.stats; }
std::string Job::interpret_dir() const { return run_dir() + "/interpret"; }

const StageResources& Job::resources(const std::string& stage) const {
  if (stage == "harvest") return resources_harvest;
  if (stage == "train") return resources_train;
  if (stage == "stats") return resources_stats;
  if (stage == "interpret") return resources_interpret;
  internal_error("unknown stage " + stage);
}
StageResources& Job::resources_for(const std::string& stage) {
  return const_cast<StageResources&>(std::as_const(*this).resources(stage));
}

void write_resolved_job(const Job& job) {
  write_file_atomic(job.run_dir() + "/job.resolved.toml", job.resolved_toml);
}

}  // namespace saepipe
