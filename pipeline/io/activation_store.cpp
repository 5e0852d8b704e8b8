// Writing the activation store's HDF5 files: shards, the virtual dataset over them, and the
// synthetic ground truth. (The manifest is in store_manifest.cpp, reading in store_reader.cpp.)
#include "pipeline/io/activation_store.hpp"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/worker_pool.hpp"
#include "pipeline/io/atomic_h5.hpp"
#include "pipeline/io/chunk_codec.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {

constexpr const char* kShardSchema = "saepipe.activations.shard";
constexpr const char* kVirtualSchema = "saepipe.activations.virtual";
constexpr const char* kGroundTruthSchema = "saepipe.activations.ground_truth";
constexpr int64_t kVersion = 1;

h5::Type to_h5_type(StoreDtype dtype) {
  switch (dtype) {
    case StoreDtype::Float32: return h5::Type::Float32;
    case StoreDtype::Float16: return h5::Type::Float16;
    case StoreDtype::BFloat16: return h5::Type::BFloat16;
  }
  internal_error("unknown StoreDtype");
}

std::string in_dir(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

// What a shard on disk says about itself; `readable` is false when it cannot be trusted.
struct ShardStamp {
  bool readable = false, complete = false;
  std::string schema, fingerprint;
  int64_t first_token = -1, n_tokens = -1;
};

ShardStamp read_stamp(const std::string& path) {
  ShardStamp s;
  try {
    h5::File f = h5::open_file(path);
    if (!f.has_attribute("complete") || f.read_int_attribute("complete") != 1) return s;
    s.schema = f.has_attribute("schema") ? f.read_string_attribute("schema") : "";
    s.fingerprint = f.has_attribute("fingerprint") ? f.read_string_attribute("fingerprint") : "";
    s.first_token = f.has_attribute("first_token") ? f.read_int_attribute("first_token") : -1;
    s.n_tokens = f.has_attribute("n_tokens") ? f.read_int_attribute("n_tokens") : -1;
    s.readable = s.complete = true;
  } catch (const SaeError&) {
    // Truncated or otherwise unreadable: the shard is rewritten.
  }
  return s;
}

// Writes one hook's activations [N, D] as whole chunks: a group of chunks is encoded and
// checksummed on the pool while the previous group is written (H5Dwrite_chunk, this thread).
// The bytes are what HDF5's Fletcher32 filter would store: elements, then the checksum; an edge
// chunk's rows past N are zeros, as HDF5 fills them.
void write_activations(const h5::Dataset& ds, const float* x, int64_t n, int64_t d, int64_t chunk_rows,
                       StoreDtype dtype, WorkerPool* pool) {
  const int64_t row_bytes = d * store_dtype_bytes(dtype), data_bytes = chunk_rows * row_bytes;
  const int64_t n_chunks = (n + chunk_rows - 1) / chunk_rows;
  const int64_t group = std::max<int64_t>(1, pool ? 2 * pool->size() : 1);
  const int64_t stride = (data_bytes + 4 + 63) / 64 * 64;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size_t(2 * group * stride)]);
  std::vector<int64_t> overflow(size_t(n_chunks), -1);  // first overflowing element of each chunk
  auto encode = [&](int64_t c) {
    uint8_t* out = buf.get() + (c % (2 * group)) * stride;
    const int64_t rows = std::min(chunk_rows, n - c * chunk_rows);
    overflow[size_t(c)] = encode_values(x + c * chunk_rows * d, rows * d, dtype, out);
    std::fill(out + rows * row_bytes, out + data_bytes, uint8_t(0));
    append_fletcher32(out, size_t(data_bytes));
  };
  auto write = [&](int64_t c) {
    if (overflow[size_t(c)] >= 0) {
      const int64_t i = c * chunk_rows * d + overflow[size_t(c)];
      user_error(ds.where() + ": value " + std::to_string(x[i]) + " at row " + std::to_string(i / d) + " overflows " +
                 to_string(dtype) + (dtype == StoreDtype::Float16 ? "; store as float32 or bfloat16" : "; store as float32"));
    }
    ds.write_chunk(c * chunk_rows, buf.get() + (c % (2 * group)) * stride, data_bytes + 4);
  };
  if (pool == nullptr) {
    for (int64_t c = 0; c < n_chunks; ++c) {
      encode(c);
      write(c);
    }
    return;
  }
  // Groups alternate between the two halves of buf: group g+1 encodes while group g is written.
  std::unique_ptr<WorkerPool::Group> next;
  auto start = [&](int64_t g) {
    auto grp = std::make_unique<WorkerPool::Group>(*pool);
    for (int64_t c = g * group; c < std::min(n_chunks, (g + 1) * group); ++c) grp->post([&encode, c] { encode(c); });
    return grp;
  };
  const int64_t n_groups = (n_chunks + group - 1) / group;
  next = start(0);
  for (int64_t g = 0; g < n_groups; ++g) {
    std::unique_ptr<WorkerPool::Group> current = std::move(next);
    current->wait();
    if (g + 1 < n_groups) next = start(g + 1);
    for (int64_t c = g * group; c < std::min(n_chunks, (g + 1) * group); ++c) write(c);
  }
}

}  // namespace

int64_t store_chunk_rows(int64_t d_model, StoreDtype dtype) {
  const int64_t row_bytes = std::max<int64_t>(1, d_model * store_dtype_bytes(dtype));
  int64_t rows = kShuffleBlockTokens;
  while (rows > 1 && rows * row_bytes > (int64_t(4) << 20)) rows /= 2;
  return rows;
}

void write_shard(const std::string& path, const ShardData& data, const std::vector<std::string>& hooks,
                 int64_t d_model, StoreDtype dtype, const std::string& fingerprint, WorkerPool* pool) {
  const int64_t n = data.n_tokens;
  SAE_ASSERT(n > 0 && d_model > 0, path + ": a shard needs tokens and d_model > 0");
  SAE_ASSERT(data.activations.size() == hooks.size(), path + ": one activation array per hook");
  for (size_t h = 0; h < hooks.size(); ++h) {
    SAE_ASSERT(int64_t(data.activations[h].size()) == n * d_model, path + ": activations of " + hooks[h] + " are not [n_tokens, d_model]");
    SAE_ASSERT(!hooks[h].empty() && hooks[h].find('/') == std::string::npos, path + ": bad hook name '" + hooks[h] + "'");
  }
  SAE_ASSERT(int64_t(data.tokens.size()) == n && int64_t(data.sequence.size()) == n && int64_t(data.position.size()) == n,
             path + ": tokens, sequence and position must hold n_tokens values");

  h5::AtomicFile out(path);
  {
    h5::File& f = out.file();
    const h5::Type type = to_h5_type(dtype);
    const int64_t chunk_rows = std::min(n, store_chunk_rows(d_model, dtype));
    for (size_t h = 0; h < hooks.size(); ++h) {
      h5::Dataset ds = f.create_dataset("activations/" + hooks[h], type, {n, d_model}, {{chunk_rows, d_model}, true});
      write_activations(ds, data.activations[h].data(), n, d_model, chunk_rows, dtype, pool);
    }
    f.create_dataset("tokens", h5::Type::Int32, {n}).write(data.tokens.data());
    f.create_dataset("sequence", h5::Type::Int64, {n}).write(data.sequence.data());
    f.create_dataset("position", h5::Type::Int32, {n}).write(data.position.data());
    f.write_string_attribute("schema", kShardSchema);
    f.write_int_attribute("version", kVersion);
    f.write_int_attribute("first_token", data.first_token);
    f.write_int_attribute("n_tokens", n);
    f.write_int_attribute("d_model", d_model);
    f.write_string_attribute("dtype", to_string(dtype));
    f.write_string_attribute("fingerprint", fingerprint);
    f.write_int_attribute("complete", 1);  // last: marks the content as whole
  }
  out.commit();
}

bool shard_complete(const std::string& path, const std::string& fingerprint, int64_t first_token, int64_t n_tokens) {
  if (!path_exists(path)) return false;
  const ShardStamp s = read_stamp(path);
  if (!s.readable || !s.complete) return false;
  std::string differs;
  if (s.schema != kShardSchema) differs = "schema '" + s.schema + "'";
  else if (s.fingerprint != fingerprint) differs = "another fingerprint";
  else if (s.first_token != first_token || s.n_tokens != n_tokens)
    differs = "tokens " + std::to_string(s.first_token) + "+" + std::to_string(s.n_tokens) + ", expected " +
              std::to_string(first_token) + "+" + std::to_string(n_tokens);
  if (!differs.empty())
    user_error(path + ": written by a different job; remove the run directory or change run.name (" + differs + ")");
  return true;
}

void write_virtual_store(const std::string& store_dir, const StoreManifest& m) {
  const h5::Type type = to_h5_type(parse_store_dtype(m.dtype));
  auto sources = [&](const std::string& dataset) {
    std::vector<h5::VirtualSource> v;
    for (const ShardInfo& s : m.shards) v.push_back({s.path, dataset, s.first_token, s.n_tokens});
    return v;
  };
  h5::AtomicFile out(in_dir(store_dir, "activations.h5"));
  {
    h5::File& f = out.file();
    for (const std::string& hook : m.hooks)
      f.create_virtual_dataset("activations/" + hook, type, {m.n_tokens, m.d_model}, sources("/activations/" + hook));
    f.create_virtual_dataset("tokens", h5::Type::Int32, {m.n_tokens}, sources("/tokens"));
    f.create_virtual_dataset("sequence", h5::Type::Int64, {m.n_tokens}, sources("/sequence"));
    f.create_virtual_dataset("position", h5::Type::Int32, {m.n_tokens}, sources("/position"));
    f.write_string_attribute("schema", kVirtualSchema);
    f.write_int_attribute("version", kVersion);
    f.write_int_attribute("n_tokens", m.n_tokens);
    f.write_int_attribute("d_model", m.d_model);
    f.write_string_attribute("dtype", m.dtype);
  }
  out.commit();
}

void write_ground_truth(const std::string& store_dir, const GroundTruth& truth) {
  const int64_t G = truth.n_features, D = truth.d_model;
  SAE_ASSERT(G > 0 && D > 0 && !truth.features.empty(), store_dir + ": ground truth needs features");
  h5::AtomicFile out(in_dir(store_dir, "ground_truth.h5"));
  {
    h5::File& f = out.file();
    f.create_dataset("features", h5::Type::Float32, {G, D}).write(truth.features[0].data());
    if (!truth.probability.empty()) f.create_dataset("probability", h5::Type::Float64, {G}).write(truth.probability.data());
    if (!truth.parent.empty()) f.create_dataset("parent", h5::Type::Int64, {G}).write(truth.parent.data());
    for (size_t l = 0; l < truth.hooks.size(); ++l) {
      f.create_dataset("hook_features/" + truth.hooks[l], h5::Type::Float32, {G, D}).write(truth.features[l].data());
      if (l < truth.linear.size() && !truth.linear[l].empty())
        f.create_dataset("hook_linear/" + truth.hooks[l], h5::Type::Float32, {D, D}).write(truth.linear[l].data());
    }
    f.write_string_attribute("schema", kGroundTruthSchema);
    f.write_int_attribute("version", kVersion);
    f.write_int_attribute("n_features", G);
    f.write_int_attribute("d_model", D);
  }
  out.commit();
}

void write_ground_truth(const std::string& store_dir, const float* features, int64_t n_features, int64_t d_model) {
  GroundTruth t;
  t.n_features = n_features;
  t.d_model = d_model;
  t.features.emplace_back(features, features + n_features * d_model);
  write_ground_truth(store_dir, t);
}

namespace {
std::vector<float> read_feature_matrix(const h5::File& f, const std::string& name, int64_t* n_features, int64_t* d_model) {
  h5::Dataset ds = f.open_dataset(name);
  const std::vector<int64_t> dims = ds.dims();
  if (dims.size() != 2 || dims[0] < 1 || dims[1] < 1)
    user_error(ds.where() + ": expected a [n_features, d_model] matrix");
  *n_features = dims[0];
  *d_model = dims[1];
  return ds.read_all<float>();
}
}  // namespace

std::vector<float> read_ground_truth(const std::string& store_dir, int64_t* n_features, int64_t* d_model) {
  return read_feature_matrix(h5::open_file(in_dir(store_dir, "ground_truth.h5")), "features", n_features, d_model);
}

std::vector<float> read_ground_truth(const std::string& store_dir, const std::string& hook, int64_t* n_features,
                                     int64_t* d_model) {
  h5::File f = h5::open_file(in_dir(store_dir, "ground_truth.h5"));
  const std::string per_hook = "hook_features/" + hook;
  return read_feature_matrix(f, !hook.empty() && f.exists(per_hook) ? per_hook : "features", n_features, d_model);
}

std::vector<int64_t> read_ground_truth_parents(const std::string& store_dir) {
  h5::File f = h5::open_file(in_dir(store_dir, "ground_truth.h5"));
  if (!f.exists("parent")) return {};
  h5::Dataset ds = f.open_dataset("parent");
  const int64_t g = f.open_dataset("features").n_rows();
  if (ds.dims() != std::vector<int64_t>{g}) user_error(ds.where() + ": expected [n_features] = [" + std::to_string(g) + "]");
  std::vector<int64_t> p = ds.read_all<int64_t>();
  for (int64_t v : p)
    if (v < -1 || v >= g) user_error(ds.where() + ": parent index " + std::to_string(v) + " out of range");
  return p;
}

bool has_ground_truth(const std::string& store_dir) { return path_exists(in_dir(store_dir, "ground_truth.h5")); }

}  // namespace saepipe
