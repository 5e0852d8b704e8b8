#include "pipeline/io/saelens_import.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/model/safetensors.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

// FNV-1a over bytes: identifies the weights in the checkpoint's fingerprint.
uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct CfgReader {
  std::string path;
  json cfg;

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    user_error(path + ": " + key + ": " + what);
  }
  int64_t positive_int(const std::string& key) const {
    if (!cfg.contains(key)) bad(key, "missing");
    const json& v = cfg[key];
    // SAELens writes ints; a float with an integral value (BatchTopK's k) is accepted too.
    if (v.is_number_integer() && v.get<int64_t>() >= 1) return v.get<int64_t>();
    if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() >= 1 &&
        v.get<double>() < 9.0e15 && std::floor(v.get<double>()) == v.get<double>())
      return int64_t(v.get<double>());
    bad(key, "must be a positive integer, got " + v.dump());
  }
  bool flag(const std::string& key, bool fallback) const {
    if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
    if (!cfg[key].is_boolean()) bad(key, "must be true or false, got " + cfg[key].dump());
    return cfg[key].get<bool>();
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
    if (!cfg[key].is_string()) bad(key, "must be a string, got " + cfg[key].dump());
    return cfg[key].get<std::string>();
  }
  // metadata.hook_name (v6); hook_name or hook_point at the top level (earlier layouts).
  std::string hook() const {
    if (cfg.contains("metadata") && cfg["metadata"].is_object()) {
      const json& m = cfg["metadata"];
      if (m.contains("hook_name") && m["hook_name"].is_string() && !m["hook_name"].get<std::string>().empty())
        return m["hook_name"].get<std::string>();
    }
    for (const char* k : {"hook_name", "hook_point"})
      if (cfg.contains(k) && cfg[k].is_string() && !cfg[k].get<std::string>().empty()) return cfg[k].get<std::string>();
    bad("metadata.hook_name", "missing: saepipe needs the hook to read the activations from");
  }
};

// Tensor `name` as float32 of the given shape; a missing or misshapen tensor is a user error,
// a non-finite value a corruption.
std::vector<float> load_tensor(const SafetensorsFile& f, const std::string& name, const std::vector<int64_t>& shape) {
  auto it = f.tensors().find(name);
  auto text = [](const std::vector<int64_t>& s) {
    std::string o = "[";
    for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
  };
  if (it == f.tensors().end()) user_error(f.path() + ": tensor " + name + " is missing");
  if (it->second.shape != shape)
    user_error(f.path() + ": tensor " + name + " has shape " + text(it->second.shape) + ", expected " + text(shape) +
               " (from cfg.json)");
  std::vector<float> v(size_t(it->second.n_elements()));
  f.read_f32(name, v.data());
  auto bad = std::find_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); });
  if (bad != v.end())
    corrupt_error(f.path() + ": tensor " + name + ": non-finite value at element " + std::to_string(bad - v.begin()));
  return v;
}

}  // namespace

bool is_saelens_dir(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "cfg.json", ec) &&
         fs::exists(fs::path(path) / "sae_weights.safetensors", ec);
}

SaeCheckpoint read_saelens_sae(const std::string& dir) {
  CfgReader r;
  r.path = (std::filesystem::path(dir) / "cfg.json").string();
  const std::string text = read_file(r.path);
  try {
    r.cfg = json::parse(text);
  } catch (const json::exception& e) {
    user_error(r.path + ": not valid JSON: " + e.what());
  }
  if (!r.cfg.is_object()) user_error(r.path + ": not a JSON object");

  const std::string arch = r.text("architecture", "standard");  // pre-6.0 files default to standard
  if (arch != "topk" && arch != "standard" && arch != "jumprelu")
    r.bad("architecture", "\"" + arch + "\" is not one saepipe evaluates (topk, standard, jumprelu)");
  const std::string norm = r.text("normalize_activations", "none");
  if (norm != "none")
    r.bad("normalize_activations",
          "\"" + norm + "\" is not supported: saepipe evaluates raw activations (fold a dataset scale into the "
          "weights with SAELens' fold_activation_norm_scaling_factor and save again)");
  const std::string reshape = r.text("reshape_activations", "none");
  if (reshape != "none") r.bad("reshape_activations", "\"" + reshape + "\" is not supported (only \"none\")");

  SaeCheckpoint c;
  c.d_in = r.positive_int("d_in");
  c.d_sae = r.positive_int("d_sae");
  const int64_t D = c.d_in, F = c.d_sae;
  if (D > (int64_t(1) << 20) || F > (int64_t(1) << 26) || D * F > (int64_t(1) << 34))
    r.bad("d_sae", "d_in " + std::to_string(D) + " x d_sae " + std::to_string(F) + " is too large");
  c.hook = r.hook();
  c.architecture = arch == "standard" ? "relu" : arch;
  if (arch == "topk") {
    c.k = r.positive_int("k");
    if (c.k > F) r.bad("k", "must be <= d_sae (" + std::to_string(F) + "), got " + std::to_string(c.k));
  }

  const SafetensorsFile f((std::filesystem::path(dir) / "sae_weights.safetensors").string());
  c.W_enc = load_tensor(f, "W_enc", {D, F});
  c.b_enc = load_tensor(f, "b_enc", {F});
  c.W_dec = load_tensor(f, "W_dec", {F, D});
  c.b_dec = load_tensor(f, "b_dec", {D});
  c.threshold.assign(size_t(F), 0.0f);
  if (arch == "jumprelu") {
    c.threshold = load_tensor(f, "threshold", {F});
    for (float& t : c.threshold) t = std::max(t, 0.0f);  // relu(pre) * (pre > t): t < 0 acts as 0
  }

  // Converted in float64, rounded once.
  if (!r.flag("apply_b_dec_to_input", true)) {  // pre = x W_enc + b_enc = (x - b_dec) W_enc + (b_enc + b_dec W_enc)
    std::vector<double> shift(size_t(F), 0.0);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t i = 0; i < F; ++i) shift[size_t(i)] += double(c.b_dec[size_t(d)]) * double(c.W_enc[size_t(d * F + i)]);
    for (int64_t i = 0; i < F; ++i) c.b_enc[size_t(i)] = float(double(c.b_enc[size_t(i)]) + shift[size_t(i)]);
  }
  if (arch == "topk" && r.flag("rescale_acts_by_decoder_norm", false)) {
    // TopK over pre_i n_i, decoded as z_i / n_i: fold n_i into the encoder and out of the decoder.
    for (int64_t i = 0; i < F; ++i) {
      double n2 = 0;
      for (int64_t d = 0; d < D; ++d) n2 += double(c.W_dec[size_t(i * D + d)]) * double(c.W_dec[size_t(i * D + d)]);
      const double n = std::max(std::sqrt(n2), 1e-8);  // SAELens clamps the norm at 1e-8 too
      for (int64_t d = 0; d < D; ++d) {
        c.W_enc[size_t(d * F + i)] = float(double(c.W_enc[size_t(d * F + i)]) * n);
        c.W_dec[size_t(i * D + d)] = float(double(c.W_dec[size_t(i * D + d)]) / n);
      }
      c.b_enc[size_t(i)] = float(double(c.b_enc[size_t(i)]) * n);
    }
  }

  uint64_t h = fnv1a(14695981039346656037ull, text.data(), text.size());
  for (const auto* v : {&c.W_enc, &c.b_enc, &c.W_dec, &c.b_dec, &c.threshold})
    h = fnv1a(h, v->data(), v->size() * sizeof(float));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  c.fingerprint = std::string("saelens:") + hex;
  c.resolved_job = "";
  return c;
}

SaeCheckpoint read_sae_for_evaluation(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (!is_saelens_dir(path))
      user_error(path + ": a directory, but not a SAELens SAE (cfg.json and sae_weights.safetensors expected)");
    return read_saelens_sae(path);
  }
  return read_sae_checkpoint(path);
}

}  // namespace saepipe
