#include "pipeline/io/saelens_export.hpp"

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"

namespace saepipe {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const SafeTensor& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    SAE_ASSERT(int64_t(t.data->size()) == n, path + ": tensor " + t.name + " size");
    const uint64_t bytes = uint64_t(n) * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const uint64_t len = text.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) output_error(path + ": cannot open for writing", errno);
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const SafeTensor& t : tensors)
    out.write(reinterpret_cast<const char*>(t.data->data()), std::streamsize(t.data->size() * sizeof(float)));
  out.close();
  if (!out) output_error(path + ": write failed", errno);
}

namespace {

// SAELens' name for how the SAE was trained (metadata.training_architecture).
std::string saelens_training_architecture(const std::string& a) {
  return a == "relu" ? "standard" : a == "matryoshka" ? "matryoshka_batchtopk" : a;
}

// "models/gpt2/" -> "gpt2"
std::string dir_name(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

// SAEMetadata as SAELens' training runner fills it, from the store's manifest. A model store
// holds the unprocessed Hugging Face model's activations, i.e. TransformerLens'
// from_pretrained_no_processing: model_from_pretrained_kwargs says so (SAELens warns to load it
// that way). Sequences are [BOS] + a slice of the token stream (no separators); a store that
// excludes the BOS position is seqpos_slice [1, None] of context_size = stored context + 1.
nlohmann::ordered_json saelens_metadata(const SaeCheckpoint& c, const StoreManifest& store) {
  using json = nlohmann::ordered_json;
  const nlohmann::json& src = store.source;
  const bool model = src.is_object() && src.value("type", "") == "model";
  const bool exclude_bos = model && src.value("exclude_bos", false);
  json m;
  m["sae_lens_version"] = kSaeLensFormatVersion;
  m["sae_lens_training_version"] = nullptr;  // not trained by SAELens
  m["dataset_path"] = model ? src.value("tokens", "") : c.store;
  m["hook_name"] = c.hook;
  if (c.transcoder) m["hook_name_out"] = c.target_hook;
  m["model_name"] = model ? json(dir_name(src.value("model", ""))) : json(nullptr);
  m["model_class_name"] = model ? json("HookedTransformer") : json(nullptr);
  m["hook_head_index"] = nullptr;
  m["context_size"] = store.context + (exclude_bos ? 1 : 0);
  m["seqpos_slice"] = exclude_bos ? json::array({1, nullptr}) : json::array({nullptr});
  m["model_from_pretrained_kwargs"] =
      model ? json{{"fold_ln", false}, {"center_writing_weights", false}, {"center_unembed", false},
                   {"fold_value_biases", false}, {"refactor_factored_attn_matrices", false}}
            : json::object();
  m["prepend_bos"] = model && src.value("prepend_bos", false);
  m["exclude_special_tokens"] = false;
  m["sequence_separator_token"] = nullptr;
  m["disable_concat_sequences"] = false;
  m["training_architecture"] = saelens_training_architecture(c.architecture);
  m["saepipe"] = {{"architecture", c.architecture}, {"k", c.k}, {"tokens_seen", c.tokens_seen}, {"step", c.step},
                  {"store", c.store}};
  return m;
}

bool saves_as_jumprelu(const std::string& a) { return a == "jumprelu" || a == "batchtopk" || a == "matryoshka"; }

}  // namespace

std::string saelens_architecture(const SaeCheckpoint& c) {
  if (c.layers > 1) return "";  // crosscoders: SAELens has none
  if (c.transcoder) {
    // SAELens' Transcoder (ReLU) and JumpReLUTranscoder, each with a skip variant; TopK and gated
    // transcoders have no SAELens class.
    const std::string skip = c.W_skip.empty() ? "" : "skip_";
    if (c.architecture == "relu") return skip + "transcoder";
    if (saves_as_jumprelu(c.architecture)) return "jumprelu_" + skip + "transcoder";
    return "";
  }
  return saves_as_jumprelu(c.architecture) ? "jumprelu"
         : c.architecture == "relu"        ? "standard"
         : c.architecture == "gated"       ? "gated"
                                           : "topk";
}

nlohmann::ordered_json saelens_config(const SaeCheckpoint& c, const StoreManifest& store) {
  const std::string arch = saelens_architecture(c);
  SAE_ASSERT(!arch.empty(), "no SAELens architecture for this dictionary");
  nlohmann::ordered_json cfg = {{"d_in", c.d_in},
                                {"d_sae", c.d_sae},
                                {"dtype", "float32"},
                                {"device", "cpu"},
                                {"apply_b_dec_to_input", !c.transcoder},  // a transcoder reads x as it is
                                {"normalize_activations", "none"},
                                {"reshape_activations", "none"},
                                {"metadata", saelens_metadata(c, store)}};
  if (c.transcoder) cfg["d_out"] = c.d_out;
  if (arch == "topk") {
    cfg["k"] = c.k;
    cfg["rescale_acts_by_decoder_norm"] = false;
  }
  cfg["architecture"] = arch;
  return cfg;
}

void write_saelens_export(const std::string& dir, const SaeCheckpoint& c, const StoreManifest& store) {
  namespace fs = std::filesystem;
  const std::string tmp = dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  make_dirs(tmp);
  const int64_t O = c.d_out > 0 ? c.d_out : c.d_in;
  std::vector<SafeTensor> tensors = {{"W_dec", {c.d_sae, O}, &c.W_dec},
                                     {"W_enc", {c.d_in, c.d_sae}, &c.W_enc},
                                     {"b_dec", {O}, &c.b_dec}};
  // gated: b_enc is the gate's bias, b_gate in SAELens
  tensors.push_back({c.architecture == "gated" ? "b_gate" : "b_enc", {c.d_sae}, &c.b_enc});
  if (saves_as_jumprelu(c.architecture)) tensors.push_back({"threshold", {c.d_sae}, &c.threshold});
  if (c.architecture == "gated") {
    tensors.push_back({"r_mag", {c.d_sae}, &c.r_mag});
    tensors.push_back({"b_mag", {c.d_sae}, &c.b_mag});
  }
  if (!c.W_skip.empty()) tensors.push_back({"W_skip", {O, c.d_in}, &c.W_skip});
  write_safetensors(tmp + "/sae_weights.safetensors", tensors);
  write_file_atomic(tmp + "/cfg.json", saelens_config(c, store).dump(2) + "\n");
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) user_error(dir + ": cannot rename " + tmp + " into place: " + ec.message());
}

}  // namespace saepipe
