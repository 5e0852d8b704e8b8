// The activation store's data path alone, as bench/bench_io.sh drives it (one JSON line per
// measurement on rank 0's stdout). Under mpirun each rank does what it does in the stages:
//   write    DIR D DTYPE TOKENS SHARD_TOKENS  rank r writes shards r, r+P, ... (write_shard on a
//            worker pool, as harvest does; the rows are made once, before the clock starts);
//            rank 0 then writes the manifest and the virtual dataset.
//   shuffled DIR BATCH WINDOW [float32|store] train's stream: rank r takes its slice of every batch
//            through BatchPrefetcher (each rank loads every window whole); the second of two
//            epochs is timed.
//   sequential DIR BATCH                      stats' reads: rank r reads its contiguous share with
//            StoreReader::read_rows in batches.
//   evict FILE...     fdatasync + posix_fadvise(DONTNEED): the files leave the page cache.
//   resident FILE...  the share of the files' pages in the page cache (mincore).
// Bytes are the activations in the store's dtype; "loaded" counts what a rank read from the
// store, "delivered" what it handed on (a rank's slice of each batch).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/worker_pool.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/batch_prefetcher.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/shuffled_batches.hpp"

namespace saepipe {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Rank 0 prints one JSON line: the slowest rank's seconds and the totals.
void report(const MpiEnv& env, const char* op, double seconds, int64_t loaded_bytes, int64_t delivered_bytes,
            int64_t tokens) {
  float slowest = float(seconds);
  env.allreduce_max(&slowest, 1);
  const int64_t loaded = env.allreduce_sum(loaded_bytes), delivered = env.allreduce_sum(delivered_bytes),
                toks = env.allreduce_sum(tokens);
  if (!env.is_root()) return;
  const double s = std::max(1e-9, double(slowest));
  std::printf("{\"op\": \"%s\", \"ranks\": %d, \"seconds\": %.4f, \"loaded_gb_s_per_rank\": %.4f, "
              "\"delivered_gb_s_per_rank\": %.4f, \"tokens_per_s_per_rank\": %.1f}\n",
              op, env.size(), s, double(loaded) / s / 1e9 / env.size(), double(delivered) / s / 1e9 / env.size(),
              double(toks) / s / env.size());
  std::fflush(stdout);
}

void bench_write(const MpiEnv& env, const std::string& dir, int64_t D, const std::string& dtype_name, int64_t N,
                 int64_t shard_tokens) {
  const StoreDtype dtype = parse_store_dtype(dtype_name);
  const std::vector<std::string> hooks = {"h"};
  const int64_t n_shards = (N + shard_tokens - 1) / shard_tokens;
  ShardData data;
  data.activations.assign(1, std::vector<float>(size_t(shard_tokens * D)));
  std::mt19937 rng(uint32_t(env.rank()) + 1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : data.activations[0]) v = normal(rng);
  data.tokens.assign(size_t(shard_tokens), 1);
  data.sequence.assign(size_t(shard_tokens), 0);
  data.position.assign(size_t(shard_tokens), 0);
  WorkerPool pool;
  char name[32];
  env.barrier();
  const double t0 = now_s();
  int64_t tokens = 0;
  for (int64_t s = env.rank(); s < n_shards; s += env.size()) {
    data.first_token = s * shard_tokens;
    data.n_tokens = std::min(shard_tokens, N - data.first_token);
    std::snprintf(name, sizeof name, "/shard-%05lld.h5", (long long)s);
    write_shard(dir + name, data, hooks, D, dtype, "bench", &pool);
    tokens += data.n_tokens;
  }
  const double seconds = now_s() - t0;
  report(env, "write", seconds, tokens * D * store_dtype_bytes(dtype), tokens * D * store_dtype_bytes(dtype), tokens);
  env.barrier();
  if (env.is_root()) {
    StoreManifest m;
    m.d_model = D;
    m.dtype = dtype_name;
    m.hooks = hooks;
    m.n_tokens = N;
    m.context = 1;
    m.source = {{"kind", "bench_io"}};
    for (int64_t s = 0; s < n_shards; ++s) {
      std::snprintf(name, sizeof name, "shard-%05lld.h5", (long long)s);
      m.shards.push_back({name, s * shard_tokens, std::min(shard_tokens, N - s * shard_tokens), int(s % env.size())});
    }
    write_virtual_store(dir, m);
    m.write(dir);
  }
  env.barrier();
}

void bench_shuffled(const MpiEnv& env, const std::string& dir, int64_t B, int64_t window, bool raw) {
  StoreReader reader(dir, "");
  const int64_t N = reader.n_tokens(), D = reader.d_model();
  const int64_t row_bytes = D * store_dtype_bytes(parse_store_dtype(reader.manifest().dtype));
  // Two epochs; the second is timed: by then the window and batch buffers exist (their first
  // touch, the kernel clearing fresh pages, is a start-up cost, not the steady state).
  const int64_t epoch = N / B, n_steps = 2 * epoch;
  const int64_t lo = B * env.rank() / env.size(), hi = B * (env.rank() + 1) / env.size();
  ShuffledBatches stream(reader, N, window, 1);
  std::mutex h5_mutex;
  env.barrier();
  double t0 = now_s();
  {
    BatchPrefetcher ahead(stream, B, lo, hi - lo, 0, n_steps, h5_mutex,
                          raw ? BatchPrefetcher::Delivery::StoreDtype : BatchPrefetcher::Delivery::Float32);
    double sink = 0;
    for (int64_t s = 0; s < n_steps; ++s) {
      if (s == epoch) t0 = now_s();
      sink += double(static_cast<const uint8_t*>(ahead.get(s))[0]);
    }
    if (sink < 0) std::puts("");
  }
  const double seconds = now_s() - t0;
  // Every rank loads every window: the whole epoch's rows.
  report(env, raw ? "shuffled_store_dtype" : "shuffled_float32", seconds, epoch * B * row_bytes,
         epoch * (hi - lo) * row_bytes, epoch * (hi - lo));
}

void bench_sequential(const MpiEnv& env, const std::string& dir, int64_t B) {
  StoreReader reader(dir, "");
  const int64_t N = reader.n_tokens(), D = reader.d_model();
  const int64_t row_bytes = D * store_dtype_bytes(parse_store_dtype(reader.manifest().dtype));
  const int64_t first = N * env.rank() / env.size(), end = N * (env.rank() + 1) / env.size();
  std::vector<float> x(size_t(B * D));
  env.barrier();
  const double t0 = now_s();
  for (int64_t a = first; a < end; a += B) reader.read_rows(a, std::min(B, end - a), x.data());
  const double seconds = now_s() - t0;
  report(env, "sequential", seconds, (end - first) * row_bytes, (end - first) * row_bytes, end - first);
}

int evict(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const int fd = ::open(argv[i], O_RDWR);
    if (fd < 0 || ::fdatasync(fd) != 0 || ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
      std::fprintf(stderr, "bench_io: cannot evict %s: %s\n", argv[i], std::strerror(errno));
      return 1;
    }
    ::close(fd);
  }
  return 0;
}

int resident(int argc, char** argv) {
  int64_t pages = 0, in_cache = 0;
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  for (int i = 2; i < argc; ++i) {
    const int fd = ::open(argv[i], O_RDONLY);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) return 1;
    if (st.st_size > 0) {
      void* map = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) return 1;
      std::vector<unsigned char> vec(size_t((st.st_size + page - 1) / page));
      if (::mincore(map, size_t(st.st_size), vec.data()) != 0) return 1;
      for (unsigned char v : vec) in_cache += v & 1;
      pages += int64_t(vec.size());
      ::munmap(map, size_t(st.st_size));
    }
    ::close(fd);
  }
  std::printf("%.4f\n", pages ? double(in_cache) / double(pages) : 0.0);
  return 0;
}

}  // namespace
}  // namespace saepipe

int main(int argc, char** argv) {
  using namespace saepipe;
  const std::string op = argc > 1 ? argv[1] : "";
  if (op == "evict") return evict(argc, argv);
  if (op == "resident") return resident(argc, argv);
  MpiSession mpi(&argc, &argv);
  MpiEnv env;
  h5::silence_errors();
  try {
    if (op == "write" && argc == 7) {
      bench_write(env, argv[2], std::stoll(argv[3]), argv[4], std::stoll(argv[5]), std::stoll(argv[6]));
    } else if (op == "shuffled" && (argc == 5 || argc == 6)) {
      bench_shuffled(env, argv[2], std::stoll(argv[3]), std::stoll(argv[4]), argc == 6 && std::string(argv[5]) == "store");
    } else if (op == "sequential" && argc == 4) {
      bench_sequential(env, argv[2], std::stoll(argv[3]));
    } else {
      std::fprintf(stderr,
                   "usage: bench_io write DIR D DTYPE TOKENS SHARD_TOKENS | shuffled DIR BATCH WINDOW [float32|store] |"
                   " sequential DIR BATCH | evict FILE... | resident FILE...\n");
      return 2;
    }
  } catch (const SaeError& e) {
    std::fprintf(stderr, "bench_io: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
