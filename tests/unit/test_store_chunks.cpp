// The store's whole-chunk path against HDF5 itself: our Fletcher32 equals what HDF5's filter
// stores; chunks written with H5Dwrite_chunk equal the filter's output byte for byte (and HDF5
// verifies and reads them); whole-chunk reads of every layout (the 1 MiB chunks of stores written
// before, contiguous, compressed, big-endian, narrow or unwritten chunks) equal HDF5's reads; the
// shuffled stream and the read-ahead against the documented stream read row by row; the pool.
#include <atomic>
#include <set>

#include "pipeline/core/worker_pool.hpp"
#include "pipeline/io/batch_prefetcher.hpp"
#include "pipeline/io/chunk_codec.hpp"
#include "pipeline/io/shuffled_batches.hpp"
#include "pipeline/core/counter_rng.hpp"
#include "tests/unit/h5_test_util.hpp"

namespace {

using saepipe::StoreDtype;
constexpr StoreDtype kDtypes[] = {StoreDtype::Float32, StoreDtype::Float16, StoreDtype::BFloat16};

h5::Type h5_type(StoreDtype d) {
  return d == StoreDtype::Float32 ? h5::Type::Float32 : d == StoreDtype::Float16 ? h5::Type::Float16 : h5::Type::BFloat16;
}

std::vector<uint8_t> raw_chunk(const h5::Dataset& ds, int64_t first_row) {
  std::vector<uint8_t> bytes(size_t(ds.chunk_info(first_row).bytes));
  ds.read_chunk(first_row, bytes.data());
  return bytes;
}

uint32_t stored_sum(const std::vector<uint8_t>& chunk) {
  const size_t n = chunk.size() - 4;
  return uint32_t(chunk[n]) | uint32_t(chunk[n + 1]) << 8 | uint32_t(chunk[n + 2]) << 16 | uint32_t(chunk[n + 3]) << 24;
}

saepipe::ShardData shard_of(const std::vector<float>& x, int64_t n) {
  saepipe::ShardData d;
  d.n_tokens = n;
  d.activations = {x};
  d.tokens.assign(size_t(n), 5);
  d.sequence.assign(size_t(n), 0);
  d.position.assign(size_t(n), 0);
  return d;
}

}  // namespace

// ============================== codec ==============================

TEST(ChunkCodec, Fletcher32EqualsWhatHdf5Stores) {
  TempDir dir;
  h5::File f = h5::create_file(dir / "f.h5");
  std::mt19937 rng(3);
  int n = 0;
  for (int64_t len : {1, 2, 3, 31, 32, 33, 511, 512, 8191, 8192, 8193, 65536, 100001, 1 << 20}) {
    for (int fill = 0; fill < 4; ++fill) {  // random, zeros, all 0xff, sparse 0xff: the folding's edge cases
      std::vector<uint8_t> bytes(static_cast<size_t>(len));
      for (uint8_t& b : bytes) b = fill == 0 ? uint8_t(rng()) : fill == 1 ? 0 : fill == 2 ? 0xff : (rng() % 9 ? 0 : 0xff);
      h5::Dataset ds = f.create_dataset("d" + std::to_string(n++), h5::Type::UInt8, {len}, {{len}, true});
      ds.write(bytes.data());  // HDF5's Fletcher32 filter computes the stored sum
      const std::vector<uint8_t> chunk = raw_chunk(ds, 0);
      ASSERT_EQ(chunk.size(), bytes.size() + 4);
      ASSERT_TRUE(std::equal(bytes.begin(), bytes.end(), chunk.begin()));
      EXPECT_EQ(saepipe::fletcher32(bytes.data(), bytes.size()), stored_sum(chunk)) << "length " << len << " fill " << fill;
      EXPECT_TRUE(saepipe::fletcher32_matches(chunk.data(), bytes.size()));
      std::vector<uint8_t> flipped = chunk;
      flipped[size_t(rng() % uint32_t(len))] ^= uint8_t(1u << (rng() % 8));
      EXPECT_FALSE(saepipe::fletcher32_matches(flipped.data(), bytes.size())) << "length " << len;
    }
  }
}

TEST(ChunkCodec, EncodeWidenAndScanMatchTheReference) {
  for (StoreDtype dtype : kDtypes) {
    SCOPED_TRACE(saepipe::to_string(dtype));
    std::vector<float> x = random_values(5000, 11);
    x.insert(x.end(), {0.0f, -0.0f, 1e-8f, -3e-6f, 65504.0f, 65519.0f, -1.0f});
    if (dtype != StoreDtype::Float16) x.push_back(3.38e38f);  // finite in bfloat16
    std::vector<uint8_t> bytes(x.size() * 4);
    ASSERT_EQ(saepipe::encode_values(x.data(), int64_t(x.size()), dtype, bytes.data()), -1);
    std::vector<float> back(x.size());
    saepipe::widen_values(bytes.data(), int64_t(x.size()), dtype, 1.0f, back.data());
    for (size_t i = 0; i < x.size(); ++i) {
      if (dtype != StoreDtype::Float32) {
        uint16_t bits;
        std::memcpy(&bits, bytes.data() + 2 * i, 2);
        ASSERT_EQ(bits, (dtype == StoreDtype::Float16 ? kF16ref : kBF16ref).round(x[i])) << x[i];
      }
      ASSERT_TRUE(same_float(back[i], expected_stored(x[i], dtype))) << x[i];
    }
    std::vector<float> scaled(x.size());
    saepipe::widen_values(bytes.data(), int64_t(x.size()), dtype, 0.37f, scaled.data());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same_float(scaled[i], back[i] * 0.37f));
    EXPECT_EQ(saepipe::first_non_finite(bytes.data(), int64_t(x.size()), dtype), -1);
    // Overflow (finite in, Inf out) is reported at its index; a NaN or Inf given is not overflow.
    std::vector<float> y = x;
    y[4000] = std::numeric_limits<float>::infinity();
    y[4100] = NAN;
    y[4321] = dtype == StoreDtype::Float16 ? 1e5f : std::numeric_limits<float>::max();
    EXPECT_EQ(saepipe::encode_values(y.data(), int64_t(y.size()), dtype, bytes.data()),
              dtype == StoreDtype::Float32 ? -1 : 4321);
    EXPECT_EQ(saepipe::first_non_finite(bytes.data(), int64_t(y.size()), dtype), 4000);
    EXPECT_EQ(saepipe::first_non_finite(bytes.data() + 4001 * saepipe::store_dtype_bytes(dtype), 200, dtype), 99);
  }
}

// ============================== writing ==============================

// A shard written chunk by chunk holds, chunk for chunk, the bytes HDF5's own filter pipeline
// writes for the same values; HDF5 verifies its checksums on read and catches a flipped bit.
TEST(StoreChunks, WrittenChunksEqualHdf5FilterOutput) {
  TempDir dir;
  saepipe::WorkerPool pool(2);
  for (StoreDtype dtype : kDtypes) {
    for (auto [n, D] : std::vector<std::pair<int64_t, int64_t>>{{2500, 24}, {700, 768}, {1, 5}}) {
      SCOPED_TRACE(saepipe::to_string(dtype) + " n " + std::to_string(n) + " D " + std::to_string(D));
      const std::vector<float> x = random_values(size_t(n * D), uint32_t(n + D));
      const int64_t cr = std::min(n, saepipe::store_chunk_rows(D, dtype));
      const std::string with_pool = dir / "pool.h5", alone = dir / "alone.h5", ref_path = dir / "ref.h5";
      saepipe::write_shard(with_pool, shard_of(x, n), {"h"}, D, dtype, "fp", &pool);
      saepipe::write_shard(alone, shard_of(x, n), {"h"}, D, dtype, "fp", nullptr);
      {
        h5::File ref = h5::create_file(ref_path);
        ref.create_dataset("activations/h", h5_type(dtype), {n, D}, {{cr, D}, true}).write(x.data());
      }
      h5::File a = h5::open_file(with_pool), b = h5::open_file(alone), r = h5::open_file(ref_path);
      h5::Dataset da = a.open_dataset("activations/h"), db = b.open_dataset("activations/h"), dr = r.open_dataset("activations/h");
      EXPECT_EQ(da.chunk_dims(), (std::vector<int64_t>{cr, D}));
      EXPECT_TRUE(da.has_fletcher32());
      for (int64_t c = 0; c < n; c += cr) {
        const std::vector<uint8_t> want = raw_chunk(dr, c);
        ASSERT_EQ(raw_chunk(da, c), want) << "chunk at row " << c;
        ASSERT_EQ(raw_chunk(db, c), want) << "chunk at row " << c;
      }
      std::vector<float> got(size_t(n * D));
      da.read(got.data());  // through HDF5's filter: checksums verified by the library
      for (int64_t i = 0; i < n * D; ++i) ASSERT_TRUE(same_float(got[i], expected_stored(x[i], dtype))) << i;
    }
  }
  // A flipped bit in a written chunk: HDF5's own read fails.
  const std::vector<float> x = random_values(3000 * 16, 5);
  saepipe::write_shard(dir / "flip.h5", shard_of(x, 3000), {"h"}, 16, StoreDtype::Float32, "fp", &pool);
  std::string bytes = slurp(dir / "flip.h5");
  const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&x[2100 * 16 + 3]), 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at] = char(bytes[at] ^ 0x20);
  spit(dir / "flip.h5", bytes);
  h5::File f = h5::open_file(dir / "flip.h5");
  std::vector<float> out(size_t(3000 * 16));
  EXPECT_SAE_ERROR(f.open_dataset("activations/h").read(out.data()), ErrorKind::Corrupt, {"flip.h5", "read failed"});
}

TEST(StoreChunks, ChunkRowsArePowersOfTwoUpToABlock) {
  EXPECT_EQ(saepipe::store_chunk_rows(768, StoreDtype::BFloat16), 1024);  // 1.5 MiB
  EXPECT_EQ(saepipe::store_chunk_rows(768, StoreDtype::Float32), 1024);   // 3 MiB
  EXPECT_EQ(saepipe::store_chunk_rows(2304, StoreDtype::BFloat16), 512);  // 2.25 MiB
  EXPECT_EQ(saepipe::store_chunk_rows(2304, StoreDtype::Float32), 256);   // 2.25 MiB
  EXPECT_EQ(saepipe::store_chunk_rows(16, StoreDtype::Float32), 1024);
  EXPECT_EQ(saepipe::store_chunk_rows(1 << 22, StoreDtype::Float32), 1);
}

// ============================== reading ==============================

namespace {

enum class Layout { Current, Before, Contiguous, Gzip, BigEndian, Narrow, Unwritten, NoChecksum };

// A shard of [n, D] values in one of the layouts a store may hold, written with the C API.
void write_layout_shard(const std::string& path, const std::vector<float>& x, int64_t first, int64_t n, int64_t D,
                        StoreDtype dtype, Layout layout) {
  if (layout == Layout::Current) {
    saepipe::ShardData d = shard_of(x, n);
    d.first_token = first;
    saepipe::write_shard(path, d, {"h"}, D, dtype, "fp");
    return;
  }
  h5::File f = h5::create_file(path);
  std::vector<int32_t> i32(size_t(n), 1);
  std::vector<int64_t> i64(size_t(n), 1);
  f.create_dataset("tokens", h5::Type::Int32, {n}).write(i32.data());
  f.create_dataset("sequence", h5::Type::Int64, {n}).write(i64.data());
  f.create_dataset("position", h5::Type::Int32, {n}).write(i32.data());
  f.write_int_attribute("first_token", first);
  if (layout == Layout::Before) {  // the writer before whole chunks: ~1 MiB chunks, HDF5's filter
    f.create_dataset("activations/h", h5_type(dtype), {n, D}).write(x.data());
    return;
  }
  h5::Group g = f.create_group("activations");
  const hsize_t dims[2] = {hsize_t(n), hsize_t(D)};
  const hid_t space = H5Screate_simple(2, dims, nullptr), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk[2] = {hsize_t(std::min<int64_t>(n, 37)), hsize_t(D)};
  if (layout == Layout::Narrow) chunk[1] = hsize_t(std::max<int64_t>(1, D / 2));
  if (layout != Layout::Contiguous) ASSERT_GE(H5Pset_chunk(dcpl, 2, chunk), 0);
  if (layout == Layout::Gzip) ASSERT_GE(H5Pset_deflate(dcpl, 4), 0);
  if (layout != Layout::Contiguous && layout != Layout::NoChecksum) ASSERT_GE(H5Pset_fletcher32(dcpl), 0);
  h5::Datatype t = h5::file_type(h5_type(dtype));
  if (layout == Layout::BigEndian) ASSERT_GE(H5Tset_order(t.id(), H5T_ORDER_BE), 0);
  const hid_t ds = H5Dcreate2(g.id(), "h", t.id(), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  // Values go in through HDF5's conversion from float32 (for 16-bit: our rounding first).
  std::vector<uint8_t> bytes(size_t(n * D) * 4);
  saepipe::encode_values(x.data(), n * D, dtype, bytes.data());
  h5::Datatype mem = h5::file_type(h5_type(dtype));
  if (layout == Layout::Unwritten) {  // only the first chunk's rows: the rest read as fill value 0
    const hsize_t start[2] = {0, 0}, count[2] = {chunk[0], hsize_t(D)};
    const hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(2, count, nullptr);
    ASSERT_GE(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nullptr, count, nullptr), 0);
    ASSERT_GE(H5Dwrite(ds, mem.id(), ms, fs, H5P_DEFAULT, bytes.data()), 0);
    H5Sclose(ms);
    H5Sclose(fs);
  } else {
    ASSERT_GE(H5Dwrite(ds, mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), 0);
  }
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
}

// A store of one hook over shards of the given sizes and layouts.
struct LayoutStore {
  int64_t D = 40;
  StoreDtype dtype = StoreDtype::BFloat16;
  std::vector<int64_t> sizes;
  std::vector<Layout> layouts;
  std::vector<float> x;
  void write(const std::string& dir) {
    saepipe::StoreManifest m;
    m.d_model = D;
    m.dtype = saepipe::to_string(dtype);
    m.hooks = {"h"};
    m.context = 1;
    int64_t first = 0;
    for (size_t s = 0; s < sizes.size(); ++s) first += sizes[s];
    m.n_tokens = first;
    x = random_values(size_t(first * D), 21);
    fs::create_directories(dir);
    first = 0;
    for (size_t s = 0; s < sizes.size(); ++s) {
      m.shards.push_back({"shard-" + std::to_string(s) + ".h5", first, sizes[s], 0});
      write_layout_shard(dir + "/" + m.shards.back().path, std::vector<float>(x.begin() + first * D, x.begin() + (first + sizes[s]) * D),
                         first, sizes[s], D, dtype, layouts[s]);
      first += sizes[s];
    }
    m.write(dir);
  }
  // Rows as HDF5 reads them (its filters, its conversion), shard by shard.
  std::vector<float> hdf5_rows(const std::string& dir) const {
    std::vector<float> all;
    for (size_t s = 0; s < sizes.size(); ++s) {
      h5::File f = h5::open_file(dir + "/shard-" + std::to_string(s) + ".h5");
      const std::vector<float> part = f.open_dataset("activations/h").read_all<float>();
      all.insert(all.end(), part.begin(), part.end());
    }
    return all;
  }
};

}  // namespace

TEST(StoreChunks, ReadsEveryLayoutAsHdf5Does) {
  TempDir dir;
  for (StoreDtype dtype : kDtypes) {
    SCOPED_TRACE(saepipe::to_string(dtype));
    LayoutStore st;
    st.dtype = dtype;
    st.sizes = {700, 1300, 90, 150, 120, 200, 111, 2600};
    st.layouts = {Layout::Before, Layout::Contiguous, Layout::Gzip, Layout::BigEndian, Layout::Narrow,
                  Layout::Unwritten, Layout::NoChecksum, Layout::Current};
    const std::string store = dir / saepipe::to_string(dtype);
    st.write(store);
    const std::vector<float> want = st.hdf5_rows(store);
    if (dtype != StoreDtype::Float32)  // the 1 MiB chunks of a store written before: not whole blocks
      EXPECT_NE(h5::open_file(store + "/shard-0.h5").open_dataset("activations/h").chunk_dims()[0], 1024);
    saepipe::StoreReader r(store, "");
    const int64_t N = r.n_tokens(), D = st.D;
    std::vector<float> got(size_t(N * D));
    r.read_rows(0, N, got.data());
    for (int64_t i = 0; i < N * D; ++i) ASSERT_TRUE(same_float(got[i], want[i])) << "row " << i / D;
    std::mt19937 rng(4);
    for (int k = 0; k < 200; ++k) {
      const int64_t first = int64_t(rng() % uint32_t(N)), count = 1 + int64_t(rng() % uint32_t(std::min<int64_t>(N - first, 900)));
      r.read_rows(first, count, got.data());
      for (int64_t i = 0; i < count * D; ++i) ASSERT_TRUE(same_float(got[i], want[first * D + i])) << first << "+" << i / D;
    }
    // Several runs in one load, some sharing chunks, in the store's own bytes.
    saepipe::RawRows rows;
    const std::vector<saepipe::RowRun> runs = {{3, 5}, {9, 40}, {690, 30}, {1999, 2}, {2100, 300}, {N - 7, 7}};
    r.load_rows(runs, rows);
    int64_t k = 0;
    for (const auto& run : runs)
      for (int64_t t = run.first; t < run.first + run.count; ++t, ++k) {
        std::vector<float> one(static_cast<size_t>(D));
        rows.widen(k, 1, 1.0f, one.data());
        for (int64_t c = 0; c < D; ++c) ASSERT_TRUE(same_float(one[c], want[t * D + c])) << "token " << t;
      }
    EXPECT_EQ(rows.size(), k);
  }
}

TEST(StoreChunks, CorruptChunksAreReportedAtTheLowestRow) {
  TempDir dir;
  LayoutStore st;
  st.dtype = StoreDtype::Float32;
  st.sizes = {3000, 3000};
  st.layouts = {Layout::Current, Layout::Current};
  st.write(dir.path());
  // Flip bits in shard 1 at rows 2500 and 1100 (two chunks); a NaN cannot be planted without
  // breaking the checksum, so the checksum error of the lower row is the one reported.
  std::string bytes = slurp(dir / "shard-1.h5");
  for (int64_t row : {2500, 1100}) {
    const float v = st.x[size_t((3000 + row) * st.D + 7)];
    const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&v), 4));
    ASSERT_NE(at, std::string::npos);
    bytes[at] = char(bytes[at] ^ 0x08);
  }
  spit(dir / "shard-1.h5", bytes);
  std::vector<float> out(size_t(6000 * st.D));
  {
    saepipe::StoreReader r(dir.path(), "");
    r.read_rows(0, 4000, out.data());  // shard 0 and the first chunk of shard 1 are intact
    expect_error([&] { r.read_rows(3500, 2500, out.data()); }, ErrorKind::Corrupt,
                 {dir / "shard-1.h5", "/activations/h", "at rows 4024..5047", "Fletcher32 checksum mismatch"});
  }
  // A chunk whose stored size disagrees with its shape is corrupt too (never read past the slot).
  {
    h5::File f = h5::open_file(dir / "shard-0.h5", true);
    const std::vector<uint8_t> small(100, 0);
    f.open_dataset("activations/h").write_chunk(1024, small.data(), int64_t(small.size()));
  }
  saepipe::StoreReader r2(dir.path(), "");
  expect_error([&] { r2.read_rows(0, 3000, out.data()); }, ErrorKind::Corrupt,
               {dir / "shard-0.h5", "at rows 1024..2047", "holds 100 bytes"});
}

// ============================== the stream ==============================

namespace {

// The stream as shuffled_batches.hpp documents it, computed the plain way: the store token at
// each of the first n stream positions.
std::vector<int64_t> documented_stream(int64_t T, int64_t window_tokens, uint64_t seed, int64_t n) {
  const int64_t block = std::min<int64_t>(1024, T), n_blocks = (T + block - 1) / block;
  const int64_t per_window = std::clamp<int64_t>(window_tokens / block, 1, n_blocks);
  auto shuffle = [&](std::vector<int64_t>& v, uint64_t stream, uint64_t key) {
    for (int64_t i = int64_t(v.size()) - 1; i > 0; --i)
      std::swap(v[size_t(i)], v[saepipe::counter_hash(seed, stream, key, uint64_t(i)) % uint64_t(i + 1)]);
  };
  std::vector<int64_t> out;
  for (int64_t epoch = 0; int64_t(out.size()) < n; ++epoch) {
    std::vector<int64_t> blocks(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) blocks[size_t(b)] = b;
    shuffle(blocks, 11, uint64_t(epoch));
    for (int64_t w = 0; w * per_window < n_blocks; ++w) {
      std::vector<int64_t> tokens;
      for (int64_t b = w * per_window; b < std::min(n_blocks, (w + 1) * per_window); ++b)
        for (int64_t t = blocks[size_t(b)] * block; t < std::min(T, (blocks[size_t(b)] + 1) * block); ++t) tokens.push_back(t);
      shuffle(tokens, 12, uint64_t(epoch) * 1000003ull + uint64_t(w));
      out.insert(out.end(), tokens.begin(), tokens.end());
    }
  }
  out.resize(size_t(n));
  return out;
}

}  // namespace

TEST(StoreChunks, StreamAndReadAheadFollowTheDocumentedOrder) {
  TempDir dir;
  LayoutStore st;
  st.D = 12;
  st.dtype = StoreDtype::BFloat16;
  st.sizes = {2048, 1500, 1452};  // a shard that does not start on a block
  st.layouts = {Layout::Current, Layout::Before, Layout::Current};
  st.write(dir.path());
  saepipe::StoreReader r(dir.path(), "");
  const int64_t D = st.D, T = 4700;  // the last 300 tokens are held out; the last block is short
  const std::vector<float> all = st.hdf5_rows(dir.path());
  struct Case {
    int64_t window, batch, first_row, count, first_step, n_steps;
  };
  // Windows of one block and of several, batches inside a window and spanning several, rank
  // slices, a resumed first step, several epochs.
  for (const Case& c : std::vector<Case>{{1500, 700, 0, 700, 0, 20},
                                         {1500, 700, 233, 234, 3, 20},
                                         {4000, 512, 100, 300, 0, 30},
                                         {100, 3000, 0, 3000, 0, 6},
                                         {100000, 1000, 500, 500, 2, 12}}) {
    SCOPED_TRACE("window " + std::to_string(c.window) + " batch " + std::to_string(c.batch));
    const std::vector<int64_t> want = documented_stream(T, c.window, 9, c.n_steps * c.batch);
    auto expect_rows = [&](int64_t s, const std::vector<float>& got) {
      for (int64_t k = 0; k < c.count; ++k) {
        const int64_t token = want[size_t(s * c.batch + c.first_row + k)];
        for (int64_t j = 0; j < D; ++j)
          ASSERT_TRUE(same_float(got[k * D + j], all[token * D + j])) << "step " << s << " row " << k;
      }
    };
    std::vector<float> got(size_t(c.count * D));
    {
      saepipe::ShuffledBatches plain(r, T, c.window, 9);
      for (int64_t p = 0; p < int64_t(want.size()); p += 37) ASSERT_EQ(plain.token_at(p), want[size_t(p)]) << p;
      saepipe::ShuffledBatches sync(r, T, c.window, 9);
      for (int64_t s = c.first_step; s < c.n_steps; ++s) {
        sync.read(s * c.batch + c.first_row, c.count, got.data());
        expect_rows(s, got);
      }
    }
    // The read-ahead: the only user of the reader while it lives (HDF5 is not thread-safe).
    for (auto delivery : {saepipe::BatchPrefetcher::Delivery::Float32, saepipe::BatchPrefetcher::Delivery::StoreDtype}) {
      saepipe::ShuffledBatches stream(r, T, c.window, 9);
      std::mutex h5_mutex;
      saepipe::BatchPrefetcher ahead(stream, c.batch, c.first_row, c.count, c.first_step, c.n_steps, h5_mutex, delivery);
      for (int64_t s = c.first_step; s < c.n_steps; ++s) {
        void* p = ahead.get(s);
        if (delivery == saepipe::BatchPrefetcher::Delivery::Float32)
          std::memcpy(got.data(), p, got.size() * sizeof(float));
        else
          saepipe::widen_values(p, c.count * D, st.dtype, 1.0f, got.data());
        expect_rows(s, got);
      }
    }
  }
}

TEST(StoreChunks, ReadAheadReportsCorruptionAtTheStepThatNeedsIt) {
  TempDir dir;
  LayoutStore st;
  st.D = 8;
  st.dtype = StoreDtype::Float32;
  st.sizes = {4096, 4096};
  st.layouts = {Layout::Current, Layout::Current};
  st.write(dir.path());
  std::string bytes = slurp(dir / "shard-1.h5");
  const float v = st.x[size_t((4096 + 3000) * st.D + 2)];  // token 7096
  const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&v), 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at] = char(bytes[at] ^ 0x01);
  spit(dir / "shard-1.h5", bytes);
  saepipe::StoreReader r(dir.path(), "");
  // The plain stream finds it at the first batch of the window holding token 7096.
  const int64_t B = 512, T = 8192, window = 2048;
  saepipe::ShuffledBatches plain(r, T, window, 3);
  std::vector<float> rows(size_t(B * st.D));
  int64_t bad_step = -1;
  for (int64_t s = 0; s < T / B && bad_step < 0; ++s) {
    try {
      plain.read(s * B, B, rows.data());
    } catch (const SaeError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corrupt);
      bad_step = s;
    }
  }
  ASSERT_GT(bad_step, 0);
  saepipe::ShuffledBatches stream(r, T, window, 3);
  std::mutex h5_mutex;
  saepipe::BatchPrefetcher ahead(stream, B, 0, B, 0, T / B, h5_mutex);
  for (int64_t s = 0; s < bad_step; ++s) ahead.get(s);
  expect_error([&] { ahead.get(bad_step); }, ErrorKind::Corrupt, {dir / "shard-1.h5", "Fletcher32 checksum mismatch"});
}

// ============================== the pool ==============================

TEST(WorkerPool, RunsEveryTaskAndRethrowsTheLowestError) {
  saepipe::WorkerPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(1000, [&](int64_t i) { hits[size_t(i)]++; });
  for (const auto& h : hits) ASSERT_EQ(h.load(), 1);
  for (int rep = 0; rep < 20; ++rep) {
    try {
      pool.parallel_for(200, [&](int64_t i) {
        if (i % 50 == 17) throw std::runtime_error(std::to_string(i));
      });
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "17");
    }
  }
  std::atomic<int> done{0};
  {
    saepipe::WorkerPool::Group g(pool);
    for (int i = 0; i < 50; ++i) g.post([&] { done++; });
    g.wait();
    EXPECT_EQ(done.load(), 50);
  }
  saepipe::WorkerPool::Group g(pool);
  g.post([] { throw std::runtime_error("task"); });
  EXPECT_THROW(g.wait(), std::runtime_error);
}
