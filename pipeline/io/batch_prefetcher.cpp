#include "pipeline/io/batch_prefetcher.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/io/shuffled_batches.hpp"

namespace saepipe {

BatchPrefetcher::BatchPrefetcher(ShuffledBatches& stream, int64_t batch, int64_t first_row, int64_t count,
                                 int64_t d, int64_t first_step, int64_t n_steps, std::mutex& h5_mutex, int depth)
    : stream_(stream), batch_(batch), first_row_(first_row), count_(count), d_(d), first_step_(first_step),
      n_steps_(n_steps), h5_mutex_(h5_mutex), depth_(depth),
      slots_(static_cast<size_t>(depth), std::vector<float>(static_cast<size_t>(std::max<int64_t>(count, 1) * d))),
      slot_step_(static_cast<size_t>(depth), -1) {
  SAE_ASSERT(depth >= 2, "prefetch depth must be >= 2 (one slot in use, one being filled)");
  consumed_ = first_step - 1;
  thread_ = std::thread([this] { run(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchPrefetcher::run() {
  for (int64_t s = first_step_; s < n_steps_; ++s) {
    const size_t slot = size_t(s % depth_);
    {
      // The slot is free once the consumer moved past the step it held (s - depth).
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || consumed_ >= s - depth_ + 1; });
      if (stop_) return;
    }
    try {
      std::lock_guard<std::mutex> h5(h5_mutex_);
      stream_.read(s * batch_ + first_row_, count_, slots_[slot].data());
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      error_step_ = s;
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot_step_[slot] = s;
    }
    cv_.notify_all();
  }
}

float* BatchPrefetcher::get(int64_t step) {
  SAE_ASSERT(step == consumed_ + 1 && step < n_steps_, "prefetched steps must be taken in order");
  const size_t slot = size_t(step % depth_);
  std::unique_lock<std::mutex> lock(mu_);
  consumed_ = step - 1;  // the previous step's slot may be refilled now
  cv_.notify_all();
  cv_.wait(lock, [&] { return slot_step_[slot] == step || (error_ && error_step_ <= step); });
  if (slot_step_[slot] != step) std::rethrow_exception(error_);
  consumed_ = step;
  return slots_[slot].data();
}

}  // namespace saepipe
