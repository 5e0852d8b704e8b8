// Reading ahead on a separate thread, so the training step never waits on HDF5. The thread
// reads the rows one rank needs for the coming steps from the shuffled stream into a ring of
// `depth` buffers. HDF5 (Debian's build) is not thread-safe: every HDF5 call of the process
// while training runs must hold `h5_mutex` — the reader thread holds it for each read, the
// trainer for its checkpoint writes.
//
// Memory: depth x count x D floats, plus the stream's shuffle window.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace saepipe {

class ShuffledBatches;

class BatchPrefetcher {
 public:
  // Step s needs stream rows [s * batch + first_row, + count), for s in [first_step, n_steps).
  BatchPrefetcher(ShuffledBatches& stream, int64_t batch, int64_t first_row, int64_t count, int64_t d,
                  int64_t first_step, int64_t n_steps, std::mutex& h5_mutex, int depth = 2);
  ~BatchPrefetcher();  // stops the thread and joins it
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // Rows of `step` (count x D), the caller's (to scale in place) until the next call; steps
  // must be asked in order.
  // Rethrows the reader thread's error (corrupt shard, NaN) in the caller's thread.
  float* get(int64_t step);

 private:
  void run();

  ShuffledBatches& stream_;
  const int64_t batch_, first_row_, count_, d_, first_step_, n_steps_;
  std::mutex& h5_mutex_;
  const int depth_;
  std::vector<std::vector<float>> slots_;
  std::vector<int64_t> slot_step_;  // the step a slot holds (-1: none)
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t consumed_ = -1;  // the last step handed out with get (its slot is in use)
  bool stop_ = false;
  std::exception_ptr error_;
  int64_t error_step_ = -1;
  std::thread thread_;
};

}  // namespace saepipe
