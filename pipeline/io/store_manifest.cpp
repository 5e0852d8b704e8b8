// The activation store's manifest.json: reading with validation, writing atomically.
#include <filesystem>
#include <set>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/activation_store.hpp"

namespace saepipe {

namespace {

constexpr const char* kSchema = "saepipe.activations";
constexpr int kVersion = 1;

std::string manifest_path(const std::string& store_dir) {
  return (std::filesystem::path(store_dir) / "manifest.json").string();
}

// Field access that names the manifest and the field in every complaint.
class Fields {
 public:
  explicit Fields(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    user_error(file_ + ": " + field + ": " + what);
  }
  const nlohmann::json& need(const nlohmann::json& obj, const std::string& key, const std::string& field) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(field, "missing");
    return *it;
  }
  int64_t need_int(const nlohmann::json& obj, const std::string& key, const std::string& field, int64_t min) const {
    const nlohmann::json& v = need(obj, key, field);
    if (!v.is_number_integer()) fail(field, "must be an integer, got " + v.dump());
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) fail(field, "too large");
    const int64_t x = v.get<int64_t>();
    if (x < min) fail(field, "must be >= " + std::to_string(min) + ", got " + std::to_string(x));
    return x;
  }
  std::string need_string(const nlohmann::json& obj, const std::string& key, const std::string& field) const {
    const nlohmann::json& v = need(obj, key, field);
    if (!v.is_string()) fail(field, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }

 private:
  std::string file_;
};

}  // namespace

StoreDtype parse_store_dtype(const std::string& name) {
  if (name == "float32") return StoreDtype::Float32;
  if (name == "float16") return StoreDtype::Float16;
  if (name == "bfloat16") return StoreDtype::BFloat16;
  user_error("unknown activation dtype '" + name + "' (expected float32, float16 or bfloat16)");
}

std::string to_string(StoreDtype dtype) {
  switch (dtype) {
    case StoreDtype::Float32: return "float32";
    case StoreDtype::Float16: return "float16";
    case StoreDtype::BFloat16: return "bfloat16";
  }
  return "unknown";
}

int64_t store_dtype_bytes(StoreDtype dtype) { return dtype == StoreDtype::Float32 ? 4 : 2; }

StoreManifest StoreManifest::read(const std::string& store_dir) {
  const std::string file = manifest_path(store_dir);
  if (!path_exists(file)) user_error(file + ": no activation store here (manifest.json missing)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    user_error(file + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) user_error(file + ": not a JSON object");
  const Fields f(file);

  const std::string schema = f.need_string(j, "schema", "schema");
  if (schema != kSchema) f.fail("schema", "is '" + schema + "', expected '" + kSchema + "' (not an activation store)");
  StoreManifest m;
  const int64_t version = f.need_int(j, "version", "version", 0);
  if (version != kVersion)
    f.fail("version", std::to_string(version) + " is not supported (this build reads version " +
                          std::to_string(kVersion) + ")");
  m.version = int(version);
  m.d_model = f.need_int(j, "d_model", "d_model", 1);
  m.dtype = f.need_string(j, "dtype", "dtype");
  if (m.dtype != "float32" && m.dtype != "float16" && m.dtype != "bfloat16")
    f.fail("dtype", "is '" + m.dtype + "', expected float32, float16 or bfloat16");
  m.n_tokens = f.need_int(j, "n_tokens", "n_tokens", 1);
  m.context = f.need_int(j, "context", "context", 1);

  const nlohmann::json& hooks = f.need(j, "hooks", "hooks");
  if (!hooks.is_array() || hooks.empty()) f.fail("hooks", "must be a non-empty array of hook names");
  std::set<std::string> seen_hooks;
  for (size_t i = 0; i < hooks.size(); ++i) {
    const std::string field = "hooks[" + std::to_string(i) + "]";
    if (!hooks[i].is_string() || hooks[i].get<std::string>().empty()) f.fail(field, "must be a non-empty string");
    const std::string hook = hooks[i].get<std::string>();
    if (hook.find('/') != std::string::npos) f.fail(field, "'" + hook + "' must not contain '/'");
    if (!seen_hooks.insert(hook).second) f.fail(field, "'" + hook + "' is listed twice");
    m.hooks.push_back(hook);
  }

  m.source = f.need(j, "source", "source");
  if (!m.source.is_object()) f.fail("source", "must be an object");

  const nlohmann::json& shards = f.need(j, "shards", "shards");
  if (!shards.is_array() || shards.empty()) f.fail("shards", "must be a non-empty array");
  std::set<std::string> seen_paths;
  int64_t next = 0;  // shards are contiguous and in token order
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string field = "shards[" + std::to_string(i) + "]";
    const nlohmann::json& s = shards[i];
    if (!s.is_object()) f.fail(field, "must be an object");
    ShardInfo info;
    info.path = f.need_string(s, "path", field + ".path");
    if (info.path.empty()) f.fail(field + ".path", "must not be empty");
    if (!seen_paths.insert(info.path).second) f.fail(field + ".path", "'" + info.path + "' is listed twice");
    info.n_tokens = f.need_int(s, "n_tokens", field + ".n_tokens", 1);
    info.rank = int(f.need_int(s, "rank", field + ".rank", 0));
    info.first_token = s.contains("first_token") ? f.need_int(s, "first_token", field + ".first_token", 0) : next;
    if (info.first_token != next)
      f.fail(field + ".first_token", "is " + std::to_string(info.first_token) + ", expected " + std::to_string(next) +
                                         " (shards must be contiguous and in token order)");
    next += info.n_tokens;
    m.shards.push_back(std::move(info));
  }
  if (next != m.n_tokens)
    f.fail("shards", "cover " + std::to_string(next) + " tokens but n_tokens is " + std::to_string(m.n_tokens));
  return m;
}

void StoreManifest::write(const std::string& store_dir) const {
  nlohmann::ordered_json j;  // ordered: the file reads in the order of the contract
  j["schema"] = kSchema;
  j["version"] = version;
  j["d_model"] = d_model;
  j["dtype"] = dtype;
  j["hooks"] = hooks;
  j["n_tokens"] = n_tokens;
  j["context"] = context;
  j["source"] = nlohmann::ordered_json::parse(source.dump());
  j["shards"] = nlohmann::ordered_json::array();
  for (const ShardInfo& s : shards)
    j["shards"].push_back({{"path", s.path}, {"first_token", s.first_token}, {"n_tokens", s.n_tokens}, {"rank", s.rank}});
  write_file_atomic(manifest_path(store_dir), j.dump(2) + "\n");
}

}  // namespace saepipe
