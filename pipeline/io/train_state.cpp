#include "pipeline/io/train_state.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/atomic_h5.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/h5_parts.hpp"

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

// The latent segments of the parameter layout (SaeParams, pipeline/sae/sae.hpp) of a dictionary
// of F latents, in order: W_encT [F,D] | b_enc [F] | W_dec [F,O] | b_dec [O] | log_threshold [F]
// | r_mag [F] | b_mag [F] (gated) | W_skip [O,D] (skip). A part of latents [first, first + count)
// holds the same layout with `count` latents, b_dec and W_skip whole (shared).
struct Segment {
  int64_t per_latent;  // elements per latent; 0: shared, `shared` elements
  int64_t shared = 0;
};
std::vector<Segment> layout(const TrainState& s) {
  const int64_t D = s.d_in, O = s.d_out > 0 ? s.d_out : s.d_in;
  std::vector<Segment> seg = {{D}, {1}, {O}, {0, O}, {1}};
  if (s.gated) seg.insert(seg.end(), {{1}, {1}});
  if (s.skip) seg.push_back({0, O * D});
  return seg;
}
int64_t layout_size(const std::vector<Segment>& seg, int64_t F) {
  int64_t n = 0;
  for (const Segment& g : seg) n += g.per_latent > 0 ? g.per_latent * F : g.shared;
  return n;
}
// The spans of the part's latents in the whole layout (file) and in the part's own (memory);
// shared segments only when `shared`.
void part_spans(const std::vector<Segment>& seg, int64_t F, const LatentPart& p, bool latents, bool shared,
                std::vector<h5::Span>& file, std::vector<h5::Span>& memory) {
  int64_t off_file = 0, off_mem = 0;
  for (const Segment& g : seg) {
    if (g.per_latent > 0 && latents) {
      file.push_back({off_file + p.first * g.per_latent, p.count * g.per_latent});
      memory.push_back({off_mem, p.count * g.per_latent});
    }
    if (g.per_latent == 0 && shared) {
      file.push_back({off_file, g.shared});
      memory.push_back({off_mem, g.shared});
    }
    off_file += g.per_latent > 0 ? g.per_latent * F : g.shared;
    off_mem += g.per_latent > 0 ? g.per_latent * p.count : g.shared;
  }
}

void write_attributes(const h5::File& f, const TrainState& s) {
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
    write_attributes(f, s);
  }
  out.commit();
}

void write_train_state_collective(const std::string& path, const TrainState& s, const float* params,
                                  const float* adam_m, const float* adam_v, const LatentPart& part, const MpiEnv& env) {
  const std::vector<Segment> seg = layout(s);
  const int64_t F = s.d_sae, P = layout_size(seg, F), Pp = layout_size(seg, part.count);
  SAE_ASSERT(part.total == F && part.first >= 0 && part.first + part.count <= F, path + ": latent part");
  SAE_ASSERT(params != nullptr && adam_m != nullptr && adam_v != nullptr, path + ": the part's parameters and moments");
  SAE_ASSERT(int64_t(s.since_fired.size()) == F, path + ": since_fired size");
  std::vector<h5::Span> file, memory;
  part_spans(seg, F, part, part.writes, part.writes_shared, file, memory);
  std::vector<h5::Span> fired;
  if (part.writes) fired.push_back({part.first, part.count});
  abort_on_error(env, [&] {
    h5::CollectiveAtomicFile out(path, env);
    {
      const h5::File& f = out.file();
      for (const auto& [name, values] : {std::pair{"params", params}, {"adam_m", adam_m}, {"adam_v", adam_v}})
        h5::write_spans_collective(f.create_dataset(name, h5::Type::Float32, {P}), file, values, Pp, memory);
      h5::write_spans_collective(f.create_dataset("since_fired", h5::Type::Int64, {F}), fired, s.since_fired.data(), F,
                                 fired);
      write_attributes(f, s);
    }
    out.commit();
  });
}

TrainState read_train_state(const std::string& path) {
  TrainState s = read_train_state_header(path);
  h5::File f = h5::open_file(path);
  const int64_t P = layout_size(layout(s), s.d_sae);
  s.params = read_vector<float>(f, "params", P);
  s.adam_m = read_vector<float>(f, "adam_m", P);
  s.adam_v = read_vector<float>(f, "adam_v", P);
  return s;
}

void read_train_state_part(const std::string& path, TrainState& s, const LatentPart& part) {
  const std::vector<Segment> seg = layout(s);
  const int64_t F = s.d_sae, P = layout_size(seg, F), Pp = layout_size(seg, part.count);
  SAE_ASSERT(part.total == F && part.first >= 0 && part.count >= 0 && part.first + part.count <= F,
             path + ": latent part");
  std::vector<h5::Span> file, memory;
  part_spans(seg, F, part, true, true, file, memory);
  h5::File f = h5::open_file(path);
  for (const auto& [name, values] : {std::pair{"params", &s.params}, {"adam_m", &s.adam_m}, {"adam_v", &s.adam_v}}) {
    h5::Dataset ds = f.open_dataset(name);
    if (ds.dims() != std::vector<int64_t>{P}) user_error(ds.where() + ": expected " + std::to_string(P) + " elements");
    values->assign(size_t(Pp), 0.0f);
    h5::read_spans(ds, file, values->data(), Pp, memory);
  }
}

TrainState read_train_state_header(const std::string& path) {
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
  s.since_fired = read_vector<int64_t>(f, "since_fired", s.d_sae);
  return s;
}

}  // namespace saepipe
