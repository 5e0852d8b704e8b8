#include "pipeline/io/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/atomic_h5.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/h5_parts.hpp"

namespace saepipe {

namespace {

constexpr const char* kSchema = "saepipe.sae";
constexpr int64_t kVersion = 1;

// Writes each dataset of sae.h5: whole (a serial file), or one rank's part of it into a file
// every rank writes collectively (h5_parts.hpp: every rank creates every dataset, and takes part
// in every write).
struct DatasetWriter {
  const h5::File& f;
  const LatentPart* part = nullptr;  // null: the whole dictionary, serially

  // `dims` of the whole dataset; its latents along `latent_axis` (-1: none, the values are
  // shared); `values` the part's (count latents along that axis) or the whole's.
  void put(const std::string& name, const std::vector<int64_t>& dims, int latent_axis,
           const std::vector<float>& values) const {
    h5::Dataset ds = f.create_dataset(name, h5::Type::Float32, dims);
    if (part == nullptr) return ds.write(values.data());
    std::vector<int64_t> start(dims.size(), 0), count = dims;
    if (latent_axis >= 0) {
      start[size_t(latent_axis)] = part->first;
      count[size_t(latent_axis)] = part->count;
    }
    const bool mine = latent_axis >= 0 ? part->writes : part->writes_shared;
    h5::write_block_collective(ds, start, mine ? count : std::vector<int64_t>{}, values.data());
  }
};

// The datasets and attributes of sae.h5; `c` holds the part's latents (or all), F is d_sae.
void write_sae_file(const h5::File& f, const SaeCheckpoint& c, int64_t F, const LatentPart* part) {
  const int64_t D = c.d_in, O = c.d_out > 0 ? c.d_out : c.d_in, Fc = part ? part->count : F;
  const bool kind = c.transcoder || c.layers > 1;  // a transcoder or crosscoder records its kind
  const DatasetWriter w{f, part};
  w.put("W_enc", {D, F}, 1, c.W_enc);
  w.put("b_enc", {F}, 0, c.b_enc);
  w.put("W_dec", {F, O}, 0, c.W_dec);
  w.put("b_dec", {O}, -1, c.b_dec);
  w.put("threshold", {F}, 0, c.threshold.empty() ? std::vector<float>(size_t(Fc), 0.0f) : c.threshold);
  if (!c.r_mag.empty()) {
    w.put("r_mag", {F}, 0, c.r_mag);
    w.put("b_mag", {F}, 0, c.b_mag);
  }
  if (!c.W_skip.empty()) w.put("W_skip", {O, D}, -1, c.W_skip);
  if (kind) {
    f.write_int_attribute("d_out", O);
    f.write_int_attribute("transcoder", c.transcoder);
    f.write_string_attribute("target_hook", c.target_hook);
    f.write_int_attribute("layers", c.layers);
    f.write_string_attribute("hooks", nlohmann::json(c.hooks).dump());
  }
  f.write_string_attribute("schema", kSchema);
  f.write_int_attribute("version", kVersion);
  f.write_string_attribute("architecture", c.architecture);
  f.write_int_attribute("k", c.k);
  f.write_int_attribute("d_in", D);
  f.write_int_attribute("d_sae", F);
  f.write_string_attribute("hook", c.hook);
  f.write_int_attribute("tokens_seen", c.tokens_seen);
  f.write_int_attribute("step", c.step);
  f.write_string_attribute("store", c.store);
  f.write_int_attribute("heldout_first_token", c.heldout_first_token);
  f.write_int_attribute("heldout_n_tokens", c.heldout_n_tokens);
  f.write_string_attribute("resolved_job", c.resolved_job);
  f.write_string_attribute("fingerprint", c.fingerprint);
}

// Checks the sizes of a checkpoint holding `Fc` latents.
void check_sizes(const std::string& path, const SaeCheckpoint& c, int64_t Fc) {
  const int64_t D = c.d_in, O = c.d_out > 0 ? c.d_out : c.d_in;
  SAE_ASSERT(D > 0 && Fc > 0, path + ": d_in and d_sae must be positive");
  SAE_ASSERT(int64_t(c.W_enc.size()) == D * Fc && int64_t(c.W_dec.size()) == Fc * O, path + ": W_enc/W_dec sizes");
  SAE_ASSERT(int64_t(c.b_enc.size()) == Fc && int64_t(c.b_dec.size()) == O, path + ": b_enc/b_dec sizes");
  SAE_ASSERT(c.threshold.empty() || int64_t(c.threshold.size()) == Fc, path + ": threshold size");
  SAE_ASSERT((c.architecture == "gated") == (int64_t(c.r_mag.size()) == Fc && int64_t(c.b_mag.size()) == Fc),
             path + ": r_mag/b_mag belong to gated");
  SAE_ASSERT(c.W_skip.empty() || int64_t(c.W_skip.size()) == O * D, path + ": W_skip size");
}

// Reads a float32 dataset of the given shape, checking every value is finite.
// range (nullable): latents [first, first + count) only, rows of a [F, ...] dataset or columns of
// a [D, F] one (range_columns).
std::vector<float> read_weights(const h5::File& f, const std::string& name, const std::vector<int64_t>& dims,
                                const std::string& dims_text, const CheckpointRange* range = nullptr,
                                bool range_columns = false) {
  h5::Dataset ds = f.open_dataset(name);
  if (ds.dims() != dims) {
    std::string got;
    for (int64_t d : ds.dims()) got += (got.empty() ? "" : ", ") + std::to_string(d);
    user_error(ds.where() + ": shape [" + got + "], expected " + dims_text);
  }
  const h5::Type type = ds.type();
  if (type != h5::Type::Float32) user_error(ds.where() + ": stored as " + h5::to_string(type) + ", expected float32");
  std::vector<float> v;
  if (!range || range->count < 0) {
    v = ds.read_all<float>();
  } else if (!range_columns) {  // rows [first, first + count) of [F, ...]
    int64_t row = 1;
    for (size_t i = 1; i < dims.size(); ++i) row *= dims[i];
    v.resize(size_t(range->count * row));
    ds.read_rows(range->first, range->count, v.data());
  } else {  // columns of [D, F], through whole rows in blocks of about 64 MiB
    const int64_t D = dims[0], F = dims[1], n = range->count;
    const int64_t block = std::clamp<int64_t>((int64_t(1) << 24) / F, 1, D);
    std::vector<float> rows(static_cast<size_t>(block * F));
    v.resize(size_t(D * n));
    for (int64_t r0 = 0; r0 < D; r0 += block) {
      const int64_t m = std::min(block, D - r0);
      ds.read_rows(r0, m, rows.data());
      for (int64_t r = 0; r < m; ++r)
        std::copy_n(rows.begin() + r * F + range->first, n, v.begin() + (r0 + r) * n);
    }
  }
  auto bad = std::find_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); });
  if (bad != v.end())
    corrupt_error(ds.where() + ": non-finite weight (" + (std::isnan(*bad) ? "nan" : "inf") + ") at element " +
                  std::to_string(bad - v.begin()));
  return v;
}

}  // namespace

void write_sae_checkpoint(const std::string& path, const SaeCheckpoint& c) {
  check_sizes(path, c, c.d_sae);
  h5::AtomicFile out(path);
  write_sae_file(out.file(), c, c.d_sae, nullptr);
  out.commit();
}

void write_sae_checkpoint_collective(const std::string& path, const SaeCheckpoint& c, const LatentPart& part,
                                     const MpiEnv& env) {
  check_sizes(path, c, part.count);
  abort_on_error(env, [&] {
    h5::CollectiveAtomicFile out(path, env);
    write_sae_file(out.file(), c, part.total, &part);
    out.commit();
  });
}

std::string read_sae_fingerprint(const std::string& path) {
  h5::File f = h5::open_file(path);
  return f.has_attribute("fingerprint") ? f.read_string_attribute("fingerprint") : "";
}

SaeCheckpoint read_sae_checkpoint(const std::string& path, const CheckpointRange* range) {
  h5::File f = h5::open_file(path);
  if (!f.has_attribute("schema")) user_error(path + ": not an SAE checkpoint (attribute 'schema' is missing)");
  const std::string schema = f.read_string_attribute("schema");
  if (schema != kSchema) user_error(path + ": attribute 'schema' is '" + schema + "', expected '" + kSchema + "'");
  const int64_t version = f.read_int_attribute("version");
  if (version != kVersion)
    user_error(path + ": version " + std::to_string(version) + " is not supported (this build reads version " +
               std::to_string(kVersion) + ")");

  SaeCheckpoint c;
  c.d_in = f.read_int_attribute("d_in");
  c.d_sae = f.read_int_attribute("d_sae");
  if (c.d_in < 1) user_error(path + ": attribute 'd_in' must be >= 1, got " + std::to_string(c.d_in));
  if (c.d_sae < 1) user_error(path + ": attribute 'd_sae' must be >= 1, got " + std::to_string(c.d_sae));
  c.architecture = f.read_string_attribute("architecture");
  c.k = f.read_int_attribute("k");
  c.hook = f.read_string_attribute("hook");
  c.tokens_seen = f.read_int_attribute("tokens_seen");
  c.step = f.read_int_attribute("step");
  c.resolved_job = f.read_string_attribute("resolved_job");
  c.store = f.has_attribute("store") ? f.read_string_attribute("store") : "";
  c.fingerprint = f.has_attribute("fingerprint") ? f.read_string_attribute("fingerprint") : "";
  c.heldout_first_token = f.has_attribute("heldout_first_token") ? f.read_int_attribute("heldout_first_token") : 0;
  c.heldout_n_tokens = f.has_attribute("heldout_n_tokens") ? f.read_int_attribute("heldout_n_tokens") : 0;

  // Transcoders and crosscoders (absent: an SAE).
  c.d_out = f.has_attribute("d_out") ? f.read_int_attribute("d_out") : c.d_in;
  c.transcoder = f.has_attribute("transcoder") && f.read_int_attribute("transcoder") != 0;
  c.target_hook = f.has_attribute("target_hook") ? f.read_string_attribute("target_hook") : "";
  c.layers = f.has_attribute("layers") ? f.read_int_attribute("layers") : 1;
  if (c.d_out < 1 || c.d_out > (int64_t(1) << 24))
    user_error(path + ": attribute 'd_out' must be in [1, 2^24], got " + std::to_string(c.d_out));
  if (!c.transcoder && c.d_out != c.d_in)
    user_error(path + ": attribute 'd_out' (" + std::to_string(c.d_out) + ") differs from d_in but 'transcoder' is not set");
  if (c.layers < 1 || c.d_in % c.layers != 0)
    user_error(path + ": attribute 'layers' must divide d_in, got " + std::to_string(c.layers));
  if (f.has_attribute("hooks")) {
    const auto j = nlohmann::json::parse(f.read_string_attribute("hooks"), nullptr, false);
    if (!j.is_array() || !std::all_of(j.begin(), j.end(), [](const auto& h) { return h.is_string(); }))
      user_error(path + ": attribute 'hooks' is not a JSON array of hook names");
    c.hooks = j.get<std::vector<std::string>>();
  }
  if (c.layers > 1 && int64_t(c.hooks.size()) != c.layers)
    user_error(path + ": attribute 'hooks' lists " + std::to_string(c.hooks.size()) + " hooks for " +
               std::to_string(c.layers) + " layers");

  const int64_t D = c.d_in, F = c.d_sae, O = c.d_out;
  if (range && range->count >= 0 && (range->first < 0 || range->count < 1 || range->first + range->count > F))
    user_error(path + ": latents [" + std::to_string(range->first) + ", " + std::to_string(range->first + range->count) +
               ") are not within d_sae = " + std::to_string(F));
  const std::string sF = std::to_string(F), sD = std::to_string(D), sO = std::to_string(O);
  c.W_enc = read_weights(f, "W_enc", {D, F}, "[d_in, d_sae] = [" + sD + ", " + sF + "]", range, true);
  c.b_enc = read_weights(f, "b_enc", {F}, "[d_sae] = [" + sF + "]", range);
  c.W_dec = read_weights(f, "W_dec", {F, O}, "[d_sae, d_out] = [" + sF + ", " + sO + "]", range);
  c.b_dec = read_weights(f, "b_dec", {O}, "[d_out] = [" + sO + "]");
  c.threshold = read_weights(f, "threshold", {F}, "[d_sae] = [" + sF + "]", range);
  if (c.architecture == "gated") {
    c.r_mag = read_weights(f, "r_mag", {F}, "[d_sae] = [" + sF + "]", range);
    c.b_mag = read_weights(f, "b_mag", {F}, "[d_sae] = [" + sF + "]", range);
  }
  if (range && range->count >= 0) c.d_sae = range->count;  // the arrays' width; d_sae_total the file's
  c.d_sae_total = F;
  if (f.exists("W_skip")) {
    if (!c.transcoder) user_error(path + ": /W_skip belongs to a transcoder, but attribute 'transcoder' is not set");
    c.W_skip = read_weights(f, "W_skip", {O, D}, "[d_out, d_in] = [" + sO + ", " + sD + "]");
  }
  return c;
}

}  // namespace saepipe
