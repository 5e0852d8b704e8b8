#include "pipeline/io/stats_file.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/atomic_h5.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {
template <class T>
void put(const h5::File& f, const std::string& name, h5::Type type, const std::vector<T>& v) {
  f.create_dataset(name, type, {int64_t(v.size())}).write(v.data());
}
}  // namespace

void write_feature_stats(const std::string& path, const FeatureStats& s, const std::string& resolved_job) {
  h5::AtomicFile out(path);
  {
    const h5::File& f = out.file();
    f.write_string_attribute("schema", "saepipe.stats");
    f.write_int_attribute("version", 1);
    f.write_int_attribute("n_tokens", s.n_tokens);
    f.write_int_attribute("d_sae", s.d_sae);
    f.write_string_attribute("resolved_job", resolved_job);
    put(f, "fire_count", h5::Type::Int64, s.fire_count);
    put(f, "density", h5::Type::Float64, s.density);
    put(f, "log10_density", h5::Type::Float64, s.log10_density);
    put(f, "max_activation", h5::Type::Float32, s.max_activation);
    put(f, "mean_activation", h5::Type::Float32, s.mean_activation);
    put(f, "dead", h5::Type::UInt8, s.dead);
    if (!s.gt_match_index.empty()) {
      put(f, "gt_match_index", h5::Type::Int64, s.gt_match_index);
      put(f, "gt_match_cosine", h5::Type::Float32, s.gt_match_cosine);
    }
  }
  out.commit();
}

FeatureStats read_feature_stats(const std::string& path) {
  h5::File f = h5::open_file(path);
  if (!f.has_attribute("schema") || f.read_string_attribute("schema") != "saepipe.stats")
    user_error(path + ": not a saepipe stats file (schema attribute is not saepipe.stats)");
  FeatureStats s;
  s.n_tokens = f.read_int_attribute("n_tokens");
  s.d_sae = f.read_int_attribute("d_sae");
  auto get = [&](const char* name, auto& out) {
    if (!f.exists(name)) user_error(path + ": dataset /" + std::string(name) + " is missing");
    auto ds = f.open_dataset(name);
    if (ds.n_rows() != s.d_sae)
      user_error(ds.where() + ": has " + std::to_string(ds.n_rows()) + " rows, expected d_sae = " +
                 std::to_string(s.d_sae));
    using T = typename std::decay_t<decltype(out)>::value_type;
    out = ds.read_all<T>();
  };
  get("fire_count", s.fire_count);
  get("density", s.density);
  get("log10_density", s.log10_density);
  get("max_activation", s.max_activation);
  get("mean_activation", s.mean_activation);
  get("dead", s.dead);
  if (f.exists("gt_match_index")) {
    get("gt_match_index", s.gt_match_index);
    get("gt_match_cosine", s.gt_match_cosine);
  }
  return s;
}

}  // namespace saepipe
