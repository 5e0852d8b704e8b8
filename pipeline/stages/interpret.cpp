// interpret: a static site that opens from disk with no network, built from the stats stage's
// outputs (summary.json, features.h5, examples.h5):
//   index.html                 summary, density histogram, the table of latents (pipeline/interpret/site_index)
//   features/<f>.html          one page per listed latent (pipeline/interpret/feature_page)
//   neuronpedia/batch-<i>.json SAEDashboard's Neuronpedia batches, feature-extras-<i>.json beside
//                              them (pipeline/interpret/neuronpedia_export)
//   style.css
// Every rank reads the inputs; pages and batches are split over the ranks (latent f on rank
// f % size). The site is written into <run>/interpret.tmp.<pid> and renamed to <run>/interpret
// once complete, so a failed or killed run never leaves a partial site under the final name.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/interpret/feature_page.hpp"
#include "pipeline/interpret/neuronpedia_export.hpp"
#include "pipeline/interpret/site_data.hpp"
#include "pipeline/interpret/site_index.hpp"
#include "pipeline/interpret/site_style.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/model/gguf_model.hpp"
#include "pipeline/model/gguf_tokenizer.hpp"
#include "pipeline/model/hf_tokenizer.hpp"
#include "pipeline/stages/stage_driver.hpp"
#include "pipeline/stages/stages.hpp"

namespace saepipe {

namespace {

namespace fs = std::filesystem;

// The store's manifest, when the summary names a store that is still there (for the model
// directory, token file and context); an unreadable one is ignored (it is only descriptive).
nlohmann::json store_source(const nlohmann::json& summary, int64_t* context) {
  const std::string store = json_string(summary, "store");
  if (store.empty() || !path_exists(store + "/manifest.json")) return nlohmann::json::object();
  try {
    StoreManifest m = StoreManifest::read(store);
    *context = m.context;
    return m.source;
  } catch (const SaeError&) {
    return nlohmann::json::object();
  }
}

// The vocabulary that names the tokens: the model directory of the store the stats were
// computed on, else the job's harvest model. Without one, a note says why ids are shown.
void load_tokens(SiteData& site, const Job& job, const nlohmann::json& source) {
  std::string model_dir;
  if (json_string(source, "type") == "model") model_dir = json_string(source, "model");
  if (model_dir.empty() && job.harvest.source == "model") model_dir = job.harvest.model;
  if (model_dir.empty()) {
    site.token_note = "No tokenizer: a synthetic store, where a position's token id ⟨g⟩ is its largest active true "
                      "feature (⟨" + std::to_string(json_int(source, "n_features", 0)) + "⟩ when none is active).";
    return;
  }
  if (is_gguf_model_path(model_dir)) {
    if (const std::string why = gguf_tokenizer_unsupported(GgufFile(model_dir)); !why.empty()) {
      site.token_note = "No tokenizer: " + why + ", so tokens are shown as ids ⟨id⟩.";
      return;
    }
  }
  if (const auto hf = open_hf_tokenizer(model_dir)) {  // every family's tokenizer.json (or a GGUF file's)
    std::vector<std::string> bytes(size_t(hf->vocab_size()));
    for (int32_t id = 0; id < int32_t(bytes.size()); ++id) bytes[size_t(id)] = hf->token_bytes(id);
    site.tokens = TokenText(std::move(bytes), is_gguf_model_path(model_dir) ? model_dir : model_dir + "/tokenizer.json");
    return;
  }
  const std::string vocab = model_dir + "/vocab.json";
  if (!path_exists(vocab)) {
    site.token_note = "No tokenizer: " + vocab + " not found, so tokens are shown as ids ⟨id⟩.";
    return;
  }
  site.tokens = TokenText::from_vocab_json(vocab);
}

NeuronpediaMeta neuronpedia_meta(const Job& job, const SiteData& site, const nlohmann::json& source, int64_t context) {
  NeuronpediaMeta m;
  const bool model = json_string(source, "type") == "model";
  m.model_id = job.interpret.neuronpedia_model_id;
  if (m.model_id.empty() && model) {  // "models/gpt2/" -> "gpt2"
    fs::path dir = fs::path(json_string(source, "model", "model")).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();
    m.model_id = dir.filename().string();
  }
  if (m.model_id.empty()) m.model_id = model ? "model" : "synthetic";
  m.sae_set = job.interpret.neuronpedia_sae_set.empty() ? "saepipe-" + job.run.name : job.interpret.neuronpedia_sae_set;
  m.layer = hook_layer(json_string(site.summary, "hook"));
  m.dataset = model ? json_string(source, "tokens") : "synthetic";
  m.n_tokens_in_prompt = context;
  const int64_t n = json_int(site.summary, "n_tokens");
  m.n_prompts_total = context > 0 ? n / context : 0;
  return m;
}

void read_inputs(SiteData& site, const Job& job, const std::string& stats_dir, NeuronpediaMeta& meta) {
  const std::string summary_path = stats_dir + "/summary.json";
  if (!path_exists(summary_path)) user_error(summary_path + ": stats not found (run the stats stage first)");
  try {
    site.summary = nlohmann::json::parse(read_file(summary_path));
  } catch (const nlohmann::json::exception& e) {
    user_error(summary_path + ": not valid JSON: " + e.what());
  }
  if (!site.summary.is_object() || json_string(site.summary, "schema") != "saepipe.stats.summary")
    user_error(summary_path + ": schema is not saepipe.stats.summary");
  const std::string features_path = stats_dir + "/features.h5", examples_path = stats_dir + "/examples.h5";
  site.stats = read_feature_stats(features_path);
  site.has_examples = path_exists(examples_path);
  if (site.has_examples) site.examples = read_feature_examples(examples_path);
  site.run_name = job.run.name;
  site.n_listed = job.interpret.max_features;
  finish_site_data(site, features_path, examples_path);
  int64_t context = 0;
  const nlohmann::json source = store_source(site.summary, &context);
  if (site.has_examples || site.has_logits()) load_tokens(site, job, source);
  meta = neuronpedia_meta(job, site, source, context);
}

constexpr int64_t kPagesPerRankRound = 64;  // pages a rank renders between two safe points

// Removes what earlier, killed runs left: <run>/interpret.tmp.* and <run>/interpret.old.*.
void remove_stale(const std::string& out_dir) {
  const fs::path out(out_dir);
  std::error_code ec;
  const std::string stem = out.filename().string();
  for (const auto& e : fs::directory_iterator(out.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(stem + ".tmp.", 0) == 0 || name.rfind(stem + ".old.", 0) == 0) fs::remove_all(e.path(), ec);
  }
}

// Puts the finished site in place of the old one (if any).
void publish(const std::string& tmp, const std::string& out_dir) {
  std::error_code ec;
  const std::string old = out_dir + ".old." + std::to_string(::getpid());
  if (fs::exists(out_dir, ec)) {
    fs::rename(out_dir, old, ec);
    if (ec) user_error(out_dir + ": cannot move the previous site aside: " + ec.message());
  }
  fs::rename(tmp, out_dir, ec);
  if (ec) user_error(out_dir + ": cannot rename the finished site into place: " + ec.message());
  fs::remove_all(old, ec);
}

// The site is always rendered again (it is cheap and has no fingerprint of its own).
class InterpretStage final : public StageBody {
 public:
  InterpretStage(const Job& job, const MpiEnv& env, Logger& log) : job_(job), env_(env), log_(log) {}
  std::string open_inputs() override {
    read_inputs(site_, job_, job_.stats_dir(), meta_);
    return "";
  }
  std::string output_dir() const override { return job_.run_dir(); }  // the site goes to <run>/interpret
  bool complete(const std::string&) override { return false; }
  void run(const std::string& fingerprint) override;

 private:
  const Job& job_;
  const MpiEnv& env_;
  Logger& log_;
  SiteData site_;
  NeuronpediaMeta meta_;
};

}  // namespace

void run_interpret(const Job& job, const MpiEnv& env, const Backend& backend) {
  Logger log(env, "interpret");
  InterpretStage stage(job, env, log);
  drive_stage(stage, StageContext{job, env, backend, log});
}

void InterpretStage::run(const std::string&) {
  const Job& job = job_;
  const MpiEnv& env = env_;
  Logger& log = log_;
  SiteData& site = site_;
  const NeuronpediaMeta& meta = meta_;
  const std::string out_dir = job.interpret_dir();
  std::string tmp;
  env.all_or_none([&] {
    if (!env.is_root()) return;
    remove_stale(out_dir);
    tmp = out_dir + ".tmp." + std::to_string(::getpid());
    make_dirs(tmp + "/features");
    if (job.interpret.neuronpedia) make_dirs(tmp + "/neuronpedia");
  });
  env.broadcast_string(tmp);
  const int64_t F = site.n_listed;
  const int64_t B = job.interpret.neuronpedia ? (F + job.interpret.neuronpedia_batch_size - 1) / job.interpret.neuronpedia_batch_size : 0;
  log.info("rendering " + std::to_string(F) + " latent pages" + (B ? " and " + std::to_string(B) + " Neuronpedia batches" : "") +
           (site.tokens.has_vocab() ? " (tokens from " + site.tokens.source() + ")" : "") + " on " +
           std::to_string(env.size()) + " rank(s)");
  try {
    // Pages in rounds, with a safe point after each: a stopped interpret keeps nothing (its
    // temporary site is removed) and renders the site again when run again.
    const int64_t round_pages = kPagesPerRankRound * env.size();
    for (int64_t lo = 0; lo < F; lo += round_pages) {
      env.all_or_none([&] {
        for (int64_t f = lo + env.rank(); f < std::min(F, lo + round_pages); f += env.size()) {
          write_file_atomic(tmp + "/features/" + SiteData::page_name(f), render_feature_page(site, f));
          if (env.is_root()) log.progress(std::min(F, f + env.size()), F, "pages");
        }
      });
      stop_if_interrupted(env, [] { return std::string("nothing (interpret renders its site again)"); });
    }
    env.all_or_none([&] {
      if (env.is_root()) log.end_progress();
      for (int64_t b = env.rank(); b < B; b += env.size()) {
        const int64_t first = b * job.interpret.neuronpedia_batch_size;
        const int64_t last = std::min(F, first + job.interpret.neuronpedia_batch_size);
        write_file_atomic(tmp + "/neuronpedia/batch-" + std::to_string(b) + ".json",
                          neuronpedia_batch(site, first, last, meta).dump());
        write_file_atomic(tmp + "/neuronpedia/feature-extras-" + std::to_string(b) + ".json",
                          neuronpedia_feature_extras(site, first, last, meta).dump());
      }
      if (env.is_root()) {
        write_file_atomic(tmp + "/style.css", site_css());
        write_file_atomic(tmp + "/index.html", render_index(site, IndexLinks{B}));
      }
    });
    env.all_or_none([&] {
      if (env.is_root()) publish(tmp, out_dir);
    });
  } catch (...) {
    if (env.is_root()) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
    }
    throw;
  }
  log.info("wrote " + out_dir + "/index.html, " + std::to_string(F) + " pages in features/" +
           (B ? ", " + std::to_string(B) + " batches in neuronpedia/" : ""));
}

}  // namespace saepipe
