// Reading rows of an activation store across shard boundaries: whole chunks read raw on the
// calling thread, checked (Fletcher32, finiteness) on the worker pool.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <exception>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/worker_pool.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/chunk_codec.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {

// Open shards are capped so a store of thousands of shards stays under the process's file limit.
constexpr int64_t kMaxOpenShards = 32;
// Chunk slots in a load's buffer start at this alignment (whole cache lines, vector loads).
constexpr int64_t kSlotAlign = 64;

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
        activations(open_checked(file, "activations/" + hook, {info.n_tokens, m.d_model}, manifest_file)),
        tokens(open_checked(file, "tokens", {info.n_tokens}, manifest_file)),
        sequence(open_checked(file, "sequence", {info.n_tokens}, manifest_file)),
        position(open_checked(file, "position", {info.n_tokens}, manifest_file)) {
    const std::string stored = h5::to_string(activations.type());
    if (stored != m.dtype)
      user_error(activations.where() + ": stored as " + stored + " but " + manifest_file + " says " + m.dtype);
    if (file.has_attribute("first_token") && file.read_int_attribute("first_token") != info.first_token)
      user_error(path + ": first_token " + std::to_string(file.read_int_attribute("first_token")) + " disagrees with " +
                 manifest_file + " (" + std::to_string(info.first_token) + ")");
    // Raw chunk reads need chunks of whole rows, no filter but Fletcher32 and our byte order.
    const std::vector<int64_t> chunk = activations.chunk_dims();
    const std::vector<int> filters = activations.filters();
    const bool plain = filters.empty() || (filters.size() == 1 && filters[0] == H5Z_FILTER_FLETCHER32);
    if (chunk.size() == 2 && chunk[1] == m.d_model && chunk[0] > 0 && plain && activations.stored_little_endian()) {
      chunk_rows = chunk[0];
      fletcher32 = !filters.empty();
    }
  }

  h5::File file;  // declared first: closed last
  h5::Dataset activations, tokens, sequence, position;
  int64_t chunk_rows = 0;   // rows per raw chunk; 0: read through HDF5 instead
  bool fletcher32 = false;  // the chunks carry a checksum
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

WorkerPool& StoreReader::pool() {
  if (!pool_) pool_ = std::make_unique<WorkerPool>();
  return *pool_;
}
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

// One unit of a load: a whole chunk read raw, or (for datasets HDF5 must read) one piece of
// rows; and which of its rows the load uses.
struct Slot {
  size_t shard = 0;
  int64_t first = 0, rows = 0;  // the shard rows the slot's bytes hold
  int64_t offset = 0;           // into the load's buffer
  bool raw = false;             // a chunk as stored: read_chunk, checksum after the data
  bool checked = false;         // its checksum is to be verified
  size_t seg_begin = 0, seg_end = 0;
  std::string where;  // the dataset, for messages (workers must not touch the open shards)
  std::exception_ptr error;
};

// Rows [local, local + count) of a slot's shard, rows [global, ...) of the store.
struct Segment {
  int64_t local = 0, count = 0, global = 0;
};

std::string failed_read(const std::string& where, const Segment& g) {
  return where + ": read failed (checksum mismatch or corrupt data) at " + rows_text(g.global, g.count) + " (shard " +
         rows_text(g.local, g.count) + ")";
}

}  // namespace

void RawRows::widen(int64_t k, int64_t n, float scale, float* out) const {
  for (int64_t i = 0; i < n; ++i) widen_values(row(k + i), d_, dtype_, scale, out + i * d_);
}

void StoreReader::load_rows(const std::vector<RowRun>& runs, RawRows& out, std::mutex* h5_mutex) {
  const int64_t D = manifest_.d_model;
  const StoreDtype dtype = parse_store_dtype(manifest_.dtype);
  const int64_t row_bytes = D * store_dtype_bytes(dtype);
  auto h5_lock = [&] { return h5_mutex ? std::unique_lock<std::mutex>(*h5_mutex) : std::unique_lock<std::mutex>(); };

  // Plan: the slots in row order, each used row's place in the buffer.
  std::vector<Slot> slots;
  std::vector<Segment> segments;
  std::vector<int64_t> seg_out;  // the load row of each segment's first row
  int64_t total = 0, bytes = 0;
  {
    auto lock = h5_lock();
    for (size_t r = 0; r < runs.size(); ++r) {
      if (r > 0 && runs[r].first < runs[r - 1].first + runs[r - 1].count)
        internal_error(store_dir_ + ": load_rows needs ascending, disjoint runs");
      for_each_piece(runs[r].first, runs[r].count, [&](size_t i, int64_t local, int64_t n, int64_t done) {
        const int64_t global = runs[r].first + done, cr = shard(i).chunk_rows;
        for (int64_t a = local; a < local + n;) {
          const int64_t first = cr > 0 ? a / cr * cr : a;
          const int64_t rows = cr > 0 ? std::min(cr, manifest_.shards[i].n_tokens - first) : local + n - a;
          const int64_t b = std::min(local + n, first + rows);
          Slot* s = slots.empty() ? nullptr : &slots.back();
          if (s == nullptr || s->shard != i || s->first != first || !s->raw) {
            Slot slot;
            slot.shard = i;
            slot.first = first;
            slot.rows = cr > 0 ? cr : rows;  // a raw chunk is stored whole, edge chunks too
            slot.raw = cr > 0;
            slot.where = shard(i).activations.where();
            slot.offset = bytes;
            slot.seg_begin = segments.size();
            bytes += (slot.rows * row_bytes + 4 + kSlotAlign - 1) / kSlotAlign * kSlotAlign;
            slots.push_back(slot);
            s = &slots.back();
          }
          segments.push_back({a, b - a, global + (a - local)});
          seg_out.push_back(total);
          s->seg_end = segments.size();
          total += b - a;
          a = b;
        }
      });
    }
  }
  if (out.capacity_ < bytes) {
    out.bytes_.reset(new uint8_t[size_t(bytes)]);  // uninitialised: every used byte is read into
    out.capacity_ = bytes;
  }
  out.dtype_ = dtype;
  out.d_ = D;
  out.offsets_.resize(size_t(total));
  for (const Slot& s : slots)
    for (size_t g = s.seg_begin; g < s.seg_end; ++g)
      for (int64_t k = 0; k < segments[g].count; ++k)
        out.offsets_[size_t(seg_out[g] + k)] = s.offset + (segments[g].local + k - s.first) * row_bytes;

  // Checks of one slot (a worker): the checksum, then the rows used for NaN/Inf.
  uint8_t* const base = out.bytes_.get();
  auto verify = [&, base](Slot& s) {
    const uint8_t* bytes_at = base + s.offset;
    if (s.checked && !fletcher32_matches(bytes_at, size_t(s.rows * row_bytes)))
      corrupt_error(failed_read(s.where, segments[s.seg_begin]) + " (Fletcher32 checksum mismatch)");
    for (size_t g = s.seg_begin; g < s.seg_end; ++g) {
      const Segment& seg = segments[g];
      const uint8_t* rows = bytes_at + (seg.local - s.first) * row_bytes;
      const int64_t bad = first_non_finite(rows, seg.count * D, dtype);
      if (bad < 0) continue;
      float value = 0;
      widen_values(rows + bad * store_dtype_bytes(dtype), 1, dtype, 1.0f, &value);
      corrupt_error(s.where + ": non-finite value (" + (std::isnan(value) ? "nan" : "inf") + ") at global row " +
                    std::to_string(seg.global + bad / D) + ", column " + std::to_string(bad % D));
    }
  };

  // Reads one slot's bytes (this thread): the chunk as stored when it can, else its rows through
  // HDF5. A failed read is restated with the rows it was for, keeping HDF5's reason.
  auto read_slot = [&](Slot& s) {
    auto lock = h5_lock();
    OpenShard& sh = shard(s.shard);
    uint8_t* dst = base + s.offset;
    const Segment& seg0 = segments[s.seg_begin];
    int64_t stored = 0, expect = 0;
    try {
      h5::Dataset::ChunkInfo info;
      if (s.raw) info = sh.activations.chunk_info(s.first);
      const bool sum = sh.fletcher32 && (info.filter_mask & 1u) == 0;
      stored = info.bytes;
      expect = s.rows * row_bytes + (sum ? 4 : 0);
      if (s.raw && stored == expect) {
        sh.activations.read_chunk(s.first, dst);
        s.checked = sum;
      } else if (!s.raw || stored == 0) {
        // Through HDF5: a dataset raw reads can't take, or a chunk never written (fill values).
        for (size_t g = s.seg_begin; g < s.seg_end; ++g)
          sh.activations.read_rows_raw(segments[g].local, segments[g].count,
                                       dst + (segments[g].local - s.first) * row_bytes);
      }
    } catch (const SaeError& e) {
      if (e.kind() != ErrorKind::Corrupt) throw;
      const std::string what = e.what();
      const size_t reason = what.find(" (HDF5: ");
      corrupt_error(failed_read(s.where, seg0) + (reason == std::string::npos ? "" : what.substr(reason)));
    }
    if (s.raw && stored != 0 && stored != expect)
      corrupt_error(failed_read(s.where, seg0) + " (its chunk holds " + std::to_string(stored) + " bytes, expected " +
                    std::to_string(expect) + ")");
  };

  // Read (this thread), verify (the pool) as each slot arrives; stop at the first read error.
  {
    WorkerPool::Group group(pool());
    for (Slot& s : slots) {
      try {
        read_slot(s);
      } catch (...) {
        s.error = std::current_exception();
        break;
      }
      group.post([&verify, &s] {
        try {
          verify(s);
        } catch (...) {
          s.error = std::current_exception();
        }
      });
    }
    group.wait();
  }
  for (const Slot& s : slots)
    if (s.error) std::rethrow_exception(s.error);
}

void StoreReader::read_rows(int64_t first, int64_t count, float* out) {
  load_rows({{first, count}}, scratch_);
  // Widened in parts of >= 1 MiB of floats on the pool (a smaller read stays on this thread).
  const int64_t D = manifest_.d_model, block = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, D));
  const int64_t n_blocks = (count + block - 1) / block;
  auto widen = [&](int64_t b) {
    const int64_t k = b * block, n = std::min(block, count - k);
    scratch_.widen(k, n, 1.0f, out + k * D);
  };
  if (n_blocks <= 1) {
    if (count > 0) widen(0);
  } else {
    pool().parallel_for(n_blocks, widen);
  }
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
