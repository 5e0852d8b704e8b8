// Reading rows of an activation store across shard boundaries.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {

// Open shards are capped so a store of thousands of shards stays under the process's file limit.
constexpr int64_t kMaxOpenShards = 32;
// A chunk holds ~1 MiB of rows (write_shard); a larger cache keeps the chunk a read ends in for
// the next, sequential read instead of decompressing and checksumming it twice.
constexpr int64_t kChunkCacheBytes = 4 << 20;

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string rows_text(int64_t first, int64_t count) {
  return count <= 1 ? "row " + std::to_string(first)
                    : "rows " + std::to_string(first) + ".." + std::to_string(first + count - 1);
}

h5::Dataset open_checked(const h5::File& file, const std::string& name, const std::vector<int64_t>& dims,
                         const std::string& manifest_file, int64_t cache_bytes = 0) {
  h5::Dataset ds = file.open_dataset(name, cache_bytes);
  if (ds.dims() != dims)
    user_error(ds.where() + ": shape " + shape_text(ds.dims()) + " disagrees with " + manifest_file + " (" +
               shape_text(dims) + ")");
  return ds;
}

}  // namespace

struct StoreReader::OpenShard {
  OpenShard(const std::string& path, const std::string& hook, const StoreManifest& m, const ShardInfo& info,
            const std::string& manifest_file)
      : file(h5::open_file(path)),
        activations(open_checked(file, "activations/" + hook, {info.n_tokens, m.d_model}, manifest_file, kChunkCacheBytes)),
        tokens(open_checked(file, "tokens", {info.n_tokens}, manifest_file)),
        sequence(open_checked(file, "sequence", {info.n_tokens}, manifest_file)),
        position(open_checked(file, "position", {info.n_tokens}, manifest_file)) {
    const std::string stored = h5::to_string(activations.type());
    if (stored != m.dtype)
      user_error(activations.where() + ": stored as " + stored + " but " + manifest_file + " says " + m.dtype);
    if (file.has_attribute("first_token") && file.read_int_attribute("first_token") != info.first_token)
      user_error(path + ": first_token " + std::to_string(file.read_int_attribute("first_token")) + " disagrees with " +
                 manifest_file + " (" + std::to_string(info.first_token) + ")");
  }

  h5::File file;  // declared first: closed last
  h5::Dataset activations, tokens, sequence, position;
  int64_t last_use = 0;
};

StoreReader::StoreReader(const std::string& store_dir, const std::string& hook)
    : store_dir_(store_dir), manifest_(StoreManifest::read(store_dir)) {
  hook_ = hook.empty() ? manifest_.hooks.front() : hook;
  if (std::find(manifest_.hooks.begin(), manifest_.hooks.end(), hook_) == manifest_.hooks.end()) {
    std::string known;
    for (const std::string& h : manifest_.hooks) known += (known.empty() ? "" : ", ") + h;
    user_error((std::filesystem::path(store_dir) / "manifest.json").string() + ": no hook '" + hook_ +
               "' in this store (hooks: " + known + ")");
  }
  open_.resize(manifest_.shards.size());
}

StoreReader::~StoreReader() = default;
StoreReader::StoreReader(StoreReader&&) noexcept = default;
StoreReader& StoreReader::operator=(StoreReader&&) noexcept = default;

StoreReader::OpenShard& StoreReader::shard(size_t index) {
  if (!open_[index]) {
    if (n_open_ >= kMaxOpenShards) {  // close the least recently used
      size_t lru = 0;
      for (size_t i = 0; i < open_.size(); ++i)
        if (open_[i] && (!open_[lru] || open_[i]->last_use < open_[lru]->last_use)) lru = i;
      open_[lru].reset();
      --n_open_;
    }
    const std::string manifest_file = (std::filesystem::path(store_dir_) / "manifest.json").string();
    const std::string path = (std::filesystem::path(store_dir_) / manifest_.shards[index].path).string();
    if (!path_exists(path)) user_error(path + ": shard missing (listed in " + manifest_file + ")");
    open_[index] = std::make_unique<OpenShard>(path, hook_, manifest_, manifest_.shards[index], manifest_file);
    ++n_open_;
  }
  open_[index]->last_use = ++clock_;
  return *open_[index];
}

// Calls fn(shard index, row in shard, rows, rows done so far) for each shard piece of the range.
template <class Fn>
void StoreReader::for_each_piece(int64_t first, int64_t count, Fn&& fn) {
  if (first < 0 || count < 0 || first + count > manifest_.n_tokens)
    internal_error(store_dir_ + ": " + rows_text(first, count) + " out of range (" + std::to_string(manifest_.n_tokens) +
                   " tokens)");
  const auto& shards = manifest_.shards;
  // The last shard starting at or before `first`.
  auto it = std::upper_bound(shards.begin(), shards.end(), first,
                             [](int64_t row, const ShardInfo& s) { return row < s.first_token; });
  size_t i = size_t(std::distance(shards.begin(), it)) - 1;
  for (int64_t done = 0; done < count; ++i) {
    const int64_t local = first + done - shards[i].first_token;
    const int64_t n = std::min(count - done, shards[i].n_tokens - local);
    fn(i, local, n, done);
    done += n;
  }
}

namespace {

// Restates a failed read of a shard dataset with global rows, keeping HDF5's reason.
template <class Read>
void read_piece(const h5::Dataset& ds, int64_t global_first, int64_t local, int64_t n, Read&& read) {
  try {
    read();
  } catch (const SaeError& e) {
    if (e.kind() != ErrorKind::Corrupt) throw;
    const std::string what = e.what();
    const size_t reason = what.find(" (HDF5: ");
    corrupt_error(ds.where() + ": read failed (checksum mismatch or corrupt data) at " + rows_text(global_first, n) +
                  " (shard " + rows_text(local, n) + ")" + (reason == std::string::npos ? "" : what.substr(reason)));
  }
}

}  // namespace

void StoreReader::read_rows(int64_t first, int64_t count, float* out) {
  const int64_t D = manifest_.d_model;
  for_each_piece(first, count, [&](size_t i, int64_t local, int64_t n, int64_t done) {
    OpenShard& s = shard(i);
    float* dst = out + done * D;
    read_piece(s.activations, first + done, local, n, [&] { s.activations.read_rows(local, n, dst); });
    const float* bad = std::find_if(dst, dst + n * D, [](float v) { return !std::isfinite(v); });
    if (bad != dst + n * D) {
      const int64_t k = bad - dst;
      corrupt_error(s.activations.where() + ": non-finite value (" + (std::isnan(*bad) ? "nan" : "inf") +
                    ") at global row " + std::to_string(first + done + k / D) + ", column " + std::to_string(k % D));
    }
  });
}

void StoreReader::read_sequence(int64_t first, int64_t count, int64_t* out) {
  for_each_piece(first, count, [&](size_t i, int64_t local, int64_t n, int64_t done) {
    OpenShard& s = shard(i);
    read_piece(s.sequence, first + done, local, n, [&] { s.sequence.read_rows(local, n, out + done); });
  });
}

void StoreReader::read_tokens(int64_t first, int64_t count, int32_t* out) {
  for_each_piece(first, count, [&](size_t i, int64_t local, int64_t n, int64_t done) {
    OpenShard& s = shard(i);
    read_piece(s.tokens, first + done, local, n, [&] { s.tokens.read_rows(local, n, out + done); });
  });
}

void StoreReader::read_position(int64_t first, int64_t count, int32_t* out) {
  for_each_piece(first, count, [&](size_t i, int64_t local, int64_t n, int64_t done) {
    OpenShard& s = shard(i);
    read_piece(s.position, first + done, local, n, [&] { s.position.read_rows(local, n, out + done); });
  });
}

}  // namespace saepipe
