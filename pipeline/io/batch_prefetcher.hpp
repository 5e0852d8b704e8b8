// Reading ahead, so the training step never waits on the store. Two threads:
// - the loader (the only HDF5 thread while training runs) loads the shuffle windows in stream
//   order, one ahead of the window being consumed, as whole chunks (StoreReader::load_rows:
//   checksums and finiteness checked on the reader's worker pool);
// - the gatherer puts each step's rows, in stream order, into a ring of `depth` batch buffers,
//   widened to float32 or left in the store's dtype (a device that converts itself), spread
//   over the same pool.
// Buffers are allocated once and reused: no allocation or page clearing per step. HDF5
// (Debian's build) is not thread-safe: every HDF5 call of the process while training runs holds
// `h5_mutex` — the loader for each chunk read, the trainer for its checkpoint writes.
//
// Memory: two windows of rows in the store's dtype (more only while one batch spans more
// windows) + depth x count x D values.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/io/shuffled_batches.hpp"

namespace saepipe {

class BatchPrefetcher {
 public:
  enum class Delivery { Float32, StoreDtype };
  // Batch buffers come from `allocate` and go back through `release` (a device path passes its
  // pinned-memory allocator); by default plain new/delete.
  struct Allocator {
    std::function<void*(size_t bytes)> allocate;
    std::function<void(void*)> release;
  };

  // Step s needs stream rows [s * batch + first_row, + count), for s in [first_step, n_steps).
  BatchPrefetcher(ShuffledBatches& stream, int64_t batch, int64_t first_row, int64_t count, int64_t first_step,
                  int64_t n_steps, std::mutex& h5_mutex, Delivery delivery = Delivery::Float32, int depth = 2,
                  Allocator allocator = {});
  ~BatchPrefetcher();  // stops the threads and joins them
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // Rows of `step` (count x D, float32 or the store's dtype as constructed), the caller's (to
  // scale in place) until the next call; steps must be asked in order.
  // Rethrows a reading error (corrupt shard, NaN) in the caller's thread at the step that needs
  // the rows.
  void* get(int64_t step);

 private:
  struct Window {
    StreamWindow plan;
    std::unique_ptr<RawRows> rows;
    bool ready = false;
    std::exception_ptr error;
  };
  void load_windows();
  void gather_steps();
  void gather(int64_t step, void* out);

  ShuffledBatches& stream_;
  StoreReader& reader_;
  const int64_t batch_, first_row_, count_, d_, first_step_, n_steps_;
  std::mutex& h5_mutex_;
  const Delivery delivery_;
  const int depth_;
  const int64_t value_bytes_;  // bytes per delivered value
  Allocator allocator_;
  std::vector<void*> slots_;
  std::vector<int64_t> slot_step_;  // the step a slot holds (-1: none)

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Window> windows_;    // loaded or loading, in stream order
  std::vector<std::unique_ptr<RawRows>> spare_;  // released windows' buffers, for reuse
  int64_t need_until_ = 0;        // the gatherer waits for the window holding this position
  int64_t consumed_ = -1;         // the last step handed out with get (its slot is in use)
  bool stop_ = false;
  std::exception_ptr error_;
  int64_t error_step_ = -1;
  std::thread loader_, gatherer_;
};

}  // namespace saepipe
