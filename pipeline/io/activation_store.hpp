// The activation store (DESIGN.md "Activation store", schemas/activations.schema.json): a
// directory with manifest.json, one HDF5 shard per block of tokens, activations.h5 (a virtual
// dataset over the shards) and, for synthetic stores, ground_truth.h5.
//
// Shapes: N tokens, D d_model, G ground-truth features.
// Shard layout: /activations/<hook> [N, D] in the store dtype, /tokens [N] int32,
// /sequence [N] int64 (global sequence index), /position [N] int32; chunked with Fletcher32;
// root attributes schema, version, first_token, n_tokens, d_model, dtype, fingerprint, complete.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace saepipe {

class WorkerPool;

enum class StoreDtype { Float32, Float16, BFloat16 };
// "float32" | "float16" | "bfloat16"; anything else is a user error listing those.
StoreDtype parse_store_dtype(const std::string& name);
std::string to_string(StoreDtype dtype);
int64_t store_dtype_bytes(StoreDtype dtype);  // bytes per element: 4 or 2

struct ShardInfo {
  std::string path;  // relative to the store directory
  int64_t first_token = 0, n_tokens = 0;
  int rank = 0;  // the rank that wrote it
};

// manifest.json: {"schema": "saepipe.activations", "version": 1, "d_model", "dtype", "hooks",
// "n_tokens", "context", "source": {...}, "shards": [{"path", "first_token", "n_tokens", "rank"}]}.
struct StoreManifest {
  int version = 1;
  int64_t d_model = 0;
  std::string dtype;
  std::vector<std::string> hooks;
  int64_t n_tokens = 0, context = 0;
  nlohmann::json source = nlohmann::json::object();
  std::vector<ShardInfo> shards;

  // Reads and validates <store_dir>/manifest.json: user error naming the file and the field
  // (missing file, bad JSON, other schema or version, missing or mistyped field, shards that are
  // not contiguous or do not cover n_tokens). A shard without first_token gets the running sum.
  static StoreManifest read(const std::string& store_dir);
  // Writes <store_dir>/manifest.json atomically (temporary name, then rename).
  void write(const std::string& store_dir) const;
};

// One shard's rows, as the harvest produces them.
struct ShardData {
  int64_t first_token = 0, n_tokens = 0;
  std::vector<std::vector<float>> activations;  // per hook, [N * D]
  std::vector<int32_t> tokens, position;        // [N]
  std::vector<int64_t> sequence;                // [N]
};

// Rows per chunk of a shard's /activations/<hook>: a power of two up to kShuffleBlockTokens
// (so the shuffle's blocks, and stats' batches, are whole chunks when shards start at a multiple
// of it), as many as fit in 4 MiB. d 768: 1024 rows (1.5 MiB bf16, 3 MiB fp32).
inline constexpr int64_t kShuffleBlockTokens = 1024;
int64_t store_chunk_rows(int64_t d_model, StoreDtype dtype);

// Writes a shard to path + ".tmp" and renames it to `path` once complete (the temporary is
// removed if anything fails). A finite value that overflows float16 is a user error.
// Activations are encoded and checksummed chunk by chunk on `pool`'s threads (null: this thread
// alone) and stored with H5Dwrite_chunk; the file is what HDF5's own Fletcher32 filter writes.
void write_shard(const std::string& path, const ShardData& data, const std::vector<std::string>& hooks,
                 int64_t d_model, StoreDtype dtype, const std::string& fingerprint, WorkerPool* pool = nullptr);

// False when the shard is absent, unreadable or incomplete (it is to be rewritten); true when it
// is complete and was written by this job for these tokens; a user error when it is complete
// but its fingerprint or extent differ (written by a different job).
bool shard_complete(const std::string& path, const std::string& fingerprint, int64_t first_token, int64_t n_tokens);

// Writes <store_dir>/activations.h5: virtual datasets /activations/<hook> [N, D], /tokens,
// /sequence, /position mapping each shard's rows by relative file name (the store can be moved).
void write_virtual_store(const std::string& store_dir, const StoreManifest& manifest);

// <store_dir>/ground_truth.h5 of a synthetic store (atomic; schemas/activations.schema.json):
//   /features [G, D] float32          the first hook's true directions (unit rows)
//   /probability [G] float64          each feature's marginal firing probability (when known)
//   /parent [G] int64                 hierarchical stores: each feature's parent, -1 for a root
//   /hook_features/<hook> [G, D]      every hook's directions when the store has several hooks
//                                     (the first hook's equal /features; a zero row: absent there)
//   /hook_linear/<hook> [D, D]        a later hook's dense linear map of the first (x_0 R), if any
struct GroundTruth {
  int64_t n_features = 0, d_model = 0;
  std::vector<std::string> hooks;                    // empty: /features only
  std::vector<std::vector<float>> features, linear;  // per hook ([G*D]; [D*D] or empty)
  std::vector<double> probability;                   // [G] or empty
  std::vector<int64_t> parent;                       // [G] or empty
};
void write_ground_truth(const std::string& store_dir, const GroundTruth& truth);
void write_ground_truth(const std::string& store_dir, const float* features, int64_t n_features, int64_t d_model);
// /features [G, D].
std::vector<float> read_ground_truth(const std::string& store_dir, int64_t* n_features, int64_t* d_model);
// The directions of `hook`: /hook_features/<hook> when the file has them, else /features.
std::vector<float> read_ground_truth(const std::string& store_dir, const std::string& hook, int64_t* n_features,
                                     int64_t* d_model);
// /parent, or empty when the store has no hierarchy.
std::vector<int64_t> read_ground_truth_parents(const std::string& store_dir);
bool has_ground_truth(const std::string& store_dir);

// Rows [first, first + count) of the store.
struct RowRun {
  int64_t first = 0, count = 0;
};

// Rows of one hook in the store's dtype as a load left them (StoreReader::load_rows): whole
// chunks side by side in one buffer that is reused, grown when short and never cleared. Row k
// of the load (the k-th row of its runs, in order) starts at row(k).
class RawRows {
 public:
  StoreDtype dtype() const { return dtype_; }
  int64_t d_model() const { return d_; }
  int64_t size() const { return int64_t(offsets_.size()); }
  const void* row(int64_t k) const { return bytes_.get() + offsets_[size_t(k)]; }
  // Rows [k, k + n) widened to float32 times `scale` into out [n, D].
  void widen(int64_t k, int64_t n, float scale, float* out) const;

 private:
  friend class StoreReader;
  StoreDtype dtype_ = StoreDtype::Float32;
  int64_t d_ = 0, capacity_ = 0;
  std::unique_ptr<uint8_t[]> bytes_;  // default-initialised: no page clearing
  std::vector<int64_t> offsets_;
};

// Reads rows of one hook across shard boundaries, converted to float32, checking every value is
// finite. Shards are opened on first use and kept open (at most a few dozen at a time).
// Activations are read as whole chunks (H5Dread_chunk) on the calling thread; their Fletcher32
// checksums and the finiteness scan run on the reader's worker pool. Datasets a raw read cannot
// take (not chunked by whole rows, other filters, big-endian) are read through HDF5 as before.
// Not thread-safe: use one reader per thread, and since Debian's HDF5 is built without thread
// safety, never call HDF5 from two threads at once.
class StoreReader {
 public:
  // An empty hook means the store's first hook; an unknown hook is a user error listing them.
  StoreReader(const std::string& store_dir, const std::string& hook);
  ~StoreReader();
  StoreReader(StoreReader&&) noexcept;
  StoreReader& operator=(StoreReader&&) noexcept;
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  const StoreManifest& manifest() const { return manifest_; }
  const std::string& store_dir() const { return store_dir_; }
  const std::string& hook() const { return hook_; }
  int64_t n_tokens() const { return manifest_.n_tokens; }
  int64_t d_model() const { return manifest_.d_model; }

  // Rows [first, first + count): out holds count * D floats. Errors: a missing or malformed
  // shard is a user error; a failed read (checksum mismatch) or a NaN/Inf is a corrupt error
  // naming the shard, the dataset and the global row.
  void read_rows(int64_t first, int64_t count, float* out);
  // The rows of `runs` (ascending, disjoint) into `out` in the store's dtype, with the checks
  // and errors of read_rows (the error of the lowest row when several chunks are bad). When
  // h5_mutex is given, each HDF5 call holds it (other threads may then use HDF5 in between).
  void load_rows(const std::vector<RowRun>& runs, RawRows& out, std::mutex* h5_mutex = nullptr);
  // The pool load_rows verifies on; callers may run their own work on the loaded rows here.
  WorkerPool& pool();
  void read_sequence(int64_t first, int64_t count, int64_t* out);
  void read_tokens(int64_t first, int64_t count, int32_t* out);
  void read_position(int64_t first, int64_t count, int32_t* out);

 private:
  struct OpenShard;
  OpenShard& shard(size_t index);
  template <class Fn> void for_each_piece(int64_t first, int64_t count, Fn&& fn);

  std::string store_dir_, hook_;
  StoreManifest manifest_;
  std::vector<std::unique_ptr<OpenShard>> open_;  // by shard index; null = closed
  int64_t n_open_ = 0, clock_ = 0;
  std::unique_ptr<WorkerPool> pool_;  // started on first use
  RawRows scratch_;                   // read_rows' chunks
};

}  // namespace saepipe
