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

void write_saelens_export(const std::string& dir, const SaeCheckpoint& c, int64_t context_size) {
  namespace fs = std::filesystem;
  const std::string tmp = dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  make_dirs(tmp);
  const bool jump = c.architecture == "jumprelu" || c.architecture == "batchtopk";
  const std::string arch = jump ? "jumprelu" : c.architecture == "relu" ? "standard" : "topk";
  std::vector<SafeTensor> tensors = {{"W_dec", {c.d_sae, c.d_in}, &c.W_dec},
                                     {"W_enc", {c.d_in, c.d_sae}, &c.W_enc},
                                     {"b_dec", {c.d_in}, &c.b_dec},
                                     {"b_enc", {c.d_sae}, &c.b_enc}};
  if (jump) tensors.push_back({"threshold", {c.d_sae}, &c.threshold});
  write_safetensors(tmp + "/sae_weights.safetensors", tensors);

  nlohmann::ordered_json cfg = {{"architecture", arch},
                                {"d_in", c.d_in},
                                {"d_sae", c.d_sae},
                                {"dtype", "float32"},
                                {"device", "cpu"},
                                {"apply_b_dec_to_input", true},
                                {"normalize_activations", "none"},
                                {"reshape_activations", "none"}};
  if (arch == "topk") cfg["k"] = c.k;
  // Only SAEMetadata fields inside: SAELens builds SAEMetadata(**meta). The key is "meta" in
  // recent v6 releases and "metadata" in earlier ones; each ignores the other.
  const nlohmann::ordered_json meta = {{"model_name", nullptr},    {"hook_name", c.hook},
                                       {"hook_head_index", nullptr}, {"context_size", context_size},
                                       {"dataset_path", c.store},    {"prepend_bos", true}};
  cfg["meta"] = meta;
  cfg["metadata"] = meta;
  cfg["saepipe"] = {{"architecture", c.architecture}, {"tokens_seen", c.tokens_seen}, {"step", c.step}};
  write_file_atomic(tmp + "/cfg.json", cfg.dump(2) + "\n");
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) user_error(dir + ": cannot rename " + tmp + " into place: " + ec.message());
}

}  // namespace saepipe
