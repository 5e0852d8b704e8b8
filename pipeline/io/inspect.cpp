#include "pipeline/io/inspect.hpp"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/layout_check.hpp"
#include "pipeline/io/json_check.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/model/ggml_types.hpp"
#include "pipeline/model/gguf.hpp"
#include "pipeline/model/gguf_llama.hpp"

namespace saepipe {

namespace {

namespace fs = std::filesystem;

std::string inspect_store(const std::string& dir) {
  StoreManifest m = StoreManifest::read(dir);
  std::ostringstream o;
  o << "activation store " << dir << " (saepipe.activations v" << m.version << ")\n"
    << "  tokens " << m.n_tokens << ", d_model " << m.d_model << ", dtype " << m.dtype << ", context "
    << m.context << ", " << m.shards.size() << " shard(s)\n  hooks:";
  for (const auto& h : m.hooks) o << " " << h;
  o << "\n  source: " << m.source.dump() << "\n";
  const auto shard_layout = embedded_h5_layout("activations.schema.json", "shard");
  for (const auto& s : m.shards) check_h5_layout(dir + "/" + s.path, shard_layout);
  o << "  every shard matches schemas/activations.schema.json\n";
  if (path_exists(dir + "/activations.h5")) {
    check_h5_layout(dir + "/activations.h5", embedded_h5_layout("activations.schema.json", "activations.h5"));
    o << "  activations.h5: virtual dataset over the shards\n";
  }
  if (has_ground_truth(dir)) {
    int64_t g = 0, d = 0;
    read_ground_truth(dir, &g, &d);
    o << "  ground_truth.h5: " << g << " true features\n";
  }
  return o.str();
}

std::string inspect_sae(const std::string& path) {
  check_h5_layout(path, embedded_h5_layout("sae.schema.json", "sae.h5"));
  SaeCheckpoint c = read_sae_checkpoint(path);
  std::ostringstream o;
  o << "SAE checkpoint " << path << " (saepipe.sae v1)\n"
    << "  architecture " << c.architecture << ", k " << c.k << ", d_in " << c.d_in << ", d_sae " << c.d_sae
    << ", hook " << c.hook << "\n  step " << c.step << ", tokens seen " << c.tokens_seen << ", store " << c.store
    << "\n  held-out tokens [" << c.heldout_first_token << ", " << c.heldout_first_token + c.heldout_n_tokens
    << ")\n";
  return o.str();
}

std::string inspect_stats(const std::string& dir) {
  std::ostringstream o;
  const std::string features = dir + "/features.h5", examples = dir + "/examples.h5", summary = dir + "/summary.json";
  check_h5_layout(features, embedded_h5_layout("stats.schema.json", "features.h5"));
  FeatureStats s = read_feature_stats(features);
  o << "stats " << dir << " (saepipe.stats v2): " << s.d_sae << " features over " << s.n_tokens << " tokens; "
    << s.quantile_levels.size() << " quantiles, " << s.hist_bins << "-bin histograms, " << s.n_neighbours
    << " neighbours, " << s.n_logit_tokens << " logit tokens per feature\n";
  if (path_exists(examples)) {
    check_h5_layout(examples, embedded_h5_layout("stats.schema.json", "examples.h5"));
    FeatureExamples e = read_feature_examples(examples);
    o << "  examples: top " << e.top.per_feature << ", interval " << e.interval_bins << " bins x "
      << e.interval_per_bin << ", context " << e.context_before << " + 1 + " << e.context_after << " tokens\n";
  }
  if (path_exists(summary)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(summary));
    } catch (const nlohmann::json::exception& e) {
      user_error(summary + ": not valid JSON: " + e.what());
    }
    check_json(j, nlohmann::json::parse(embedded_resource("stats.schema.json")), summary);
    for (const char* k : {"fvu", "mse", "l0", "dead_fraction", "cosine", "mmcs", "frac_recovered_09", "ce_loss_recovered",
                          "kl_div"})
      if (j.contains(k)) o << "  " << k << " " << j[k].dump() << "\n";
  }
  return o.str();
}

// A llama.cpp model file: format, tensor types, and for architecture "llama" what harvest reads.
std::string inspect_gguf(const std::string& path) {
  GgufFile f(path);
  std::map<std::string, int64_t> types;
  for (const auto& t : f.tensors()) ++types[ggml_type_name(t.type)];
  std::ostringstream o;
  const std::string arch = f.get_string_opt("general.architecture").value_or("?");
  o << "GGUF model " << path << " (version " << f.version() << ", alignment " << f.alignment() << ")\n  "
    << f.metadata().size() << " metadata keys; architecture " << arch << ", name "
    << f.get_string_opt("general.name").value_or("?") << "\n  " << f.tensors().size() << " tensors:";
  for (const auto& [name, n] : types) o << " " << n << " " << name;
  o << "\n";
  if (arch == "llama") {
    const GgufLlamaParams p = read_llama_params(f);
    const GgufTokenizerData t = read_gguf_tokenizer(f);
    o << "  llama: " << p.n_layers << " layers, d_model " << p.d_model << ", d_mlp " << p.d_mlp << ", heads " << p.n_heads
      << " (kv " << p.n_kv_heads << ", dim " << p.head_dim << "), vocab " << p.vocab_size << ", context "
      << p.context_length << ", rope_theta " << p.rope_theta << ", rms_eps " << p.rms_eps
      << (p.tied_embeddings ? ", tied embeddings" : "") << "\n  tokenizer: " << t.model
      << (t.pre.empty() ? "" : " (pre " + t.pre + ")") << ", " << t.tokens.size() << " tokens, " << t.merges.size()
      << " merges, bos " << t.bos << ", eos " << t.eos << (t.add_bos ? ", adds BOS" : "") << "\n";
  }
  return o.str();
}

}  // namespace

std::string inspect_output(const std::string& path) {
  if (!path_exists(path)) user_error(path + ": no such file or directory");
  if (fs::is_directory(path)) {
    if (path_exists(path + "/manifest.json")) return inspect_store(path);
    if (path_exists(path + "/features.h5")) return inspect_stats(path);
    if (path_exists(path + "/sae.h5")) return inspect_sae(path + "/sae.h5");
    user_error(path + ": not a saepipe output directory (no manifest.json, features.h5 or sae.h5)");
  }
  if (fs::path(path).extension() == ".gguf") return inspect_gguf(path);
  if (fs::path(path).filename() == "manifest.json") return inspect_store(fs::path(path).parent_path().string());
  h5::File f = h5::open_file(path);
  std::string schema = f.has_attribute("schema") ? f.read_string_attribute("schema") : "";
  f.close();
  if (schema == "saepipe.sae") return inspect_sae(path);
  if (schema == "saepipe.stats") return inspect_stats(fs::path(path).parent_path().string());
  user_error(path + ": unknown schema \"" + schema + "\" (expected saepipe.sae or saepipe.stats)");
}

}  // namespace saepipe
