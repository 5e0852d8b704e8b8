#include "pipeline/io/train_state.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/io/atomic_h5.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {
constexpr const char* kSchema = "saepipe.train_state";
constexpr int64_t kVersion = 1;

template <class T>
std::vector<T> read_vector(const h5::File& f, const std::string& name, int64_t n) {
  h5::Dataset ds = f.open_dataset(name);
  if (ds.dims() != std::vector<int64_t>{n})
    user_error(ds.where() + ": expected " + std::to_string(n) + " elements");
  return ds.read_all<T>();
}
}  // namespace

void write_train_state(const std::string& path, const TrainState& s) {
  const int64_t P = int64_t(s.params.size()), F = s.d_sae;
  SAE_ASSERT(int64_t(s.adam_m.size()) == P && int64_t(s.adam_v.size()) == P, path + ": Adam moment sizes");
  SAE_ASSERT(int64_t(s.since_fired.size()) == F, path + ": since_fired size");
  h5::AtomicFile out(path);
  {
    const h5::File& f = out.file();
    f.create_dataset("params", h5::Type::Float32, {P}).write(s.params.data());
    f.create_dataset("adam_m", h5::Type::Float32, {P}).write(s.adam_m.data());
    f.create_dataset("adam_v", h5::Type::Float32, {P}).write(s.adam_v.data());
    f.create_dataset("since_fired", h5::Type::Int64, {F}).write(s.since_fired.data());
    f.write_string_attribute("schema", kSchema);
    f.write_int_attribute("version", kVersion);
    f.write_int_attribute("step", s.step);
    f.write_int_attribute("adam_t", s.adam_t);
    f.write_int_attribute("d_in", s.d_in);
    f.write_int_attribute("d_sae", s.d_sae);
    f.write_string_attribute("fingerprint", s.fingerprint);
    f.write_double_attribute("input_scale", s.input_scale);
    f.write_double_attribute("threshold_ema", s.threshold_ema);
    f.write_double_attribute("threshold_weight", s.threshold_weight);
    f.write_double_attribute("sparsity_log_scale", s.sparsity_log_scale);
    f.write_int_attribute("d_out", s.d_out > 0 ? s.d_out : s.d_in);
    f.write_int_attribute("layers", s.layers);
    f.write_int_attribute("transcoder", s.transcoder);
    f.write_int_attribute("skip", s.skip);
    f.write_int_attribute("gated", s.gated);
  }
  out.commit();
}

TrainState read_train_state(const std::string& path) {
  h5::File f = h5::open_file(path);
  if (!f.has_attribute("schema") || f.read_string_attribute("schema") != kSchema)
    user_error(path + ": not a training state (attribute 'schema' is not '" + std::string(kSchema) + "')");
  if (f.read_int_attribute("version") != kVersion)
    user_error(path + ": version " + std::to_string(f.read_int_attribute("version")) + " is not supported");
  TrainState s;
  s.step = f.read_int_attribute("step");
  s.adam_t = f.read_int_attribute("adam_t");
  s.d_in = f.read_int_attribute("d_in");
  s.d_sae = f.read_int_attribute("d_sae");
  s.fingerprint = f.read_string_attribute("fingerprint");
  s.input_scale = f.read_double_attribute("input_scale");
  s.threshold_ema = f.read_double_attribute("threshold_ema");
  s.threshold_weight = f.read_double_attribute("threshold_weight");
  if (f.has_attribute("sparsity_log_scale")) s.sparsity_log_scale = f.read_double_attribute("sparsity_log_scale");
  // Bounded, so the parameter count below cannot overflow (found by fuzz_h5).
  if (s.d_in < 1 || s.d_sae < 1 || s.d_in > (int64_t(1) << 24) || s.d_sae > (int64_t(1) << 30))
    user_error(path + ": d_in " + std::to_string(s.d_in) + " and d_sae " + std::to_string(s.d_sae) +
               " must be >= 1 (and below 2^24, 2^30)");
  auto opt_int = [&](const char* name, int64_t absent) { return f.has_attribute(name) ? f.read_int_attribute(name) : absent; };
  s.d_out = opt_int("d_out", s.d_in);
  s.layers = opt_int("layers", 1);
  s.transcoder = opt_int("transcoder", 0) != 0;
  s.skip = opt_int("skip", 0) != 0;
  s.gated = opt_int("gated", 0) != 0;
  if (s.d_out < 1 || s.d_out > (int64_t(1) << 24) || s.layers < 1 || s.d_out % s.layers != 0)
    user_error(path + ": d_out " + std::to_string(s.d_out) + " and layers " + std::to_string(s.layers) +
               " must be >= 1 (d_out below 2^24, a multiple of layers)");
  // SaeParams::size_for (pipeline/sae/sae.hpp)
  const int64_t D = s.d_in, F = s.d_sae, O = s.d_out;
  const int64_t P = D * F + F + F * O + O + F + (s.gated ? 2 * F : 0) + (s.skip ? O * D : 0);
  s.params = read_vector<float>(f, "params", P);
  s.adam_m = read_vector<float>(f, "adam_m", P);
  s.adam_v = read_vector<float>(f, "adam_v", P);
  s.since_fired = read_vector<int64_t>(f, "since_fired", s.d_sae);
  return s;
}

}  // namespace saepipe
