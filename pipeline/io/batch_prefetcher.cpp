#include "pipeline/io/batch_prefetcher.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/worker_pool.hpp"

namespace saepipe {

namespace {
// A gather is split over the pool in parts of at least this many bytes (waking a worker for less
// costs more than it saves, and small batches stay on the gatherer thread).
constexpr int64_t kGatherPartBytes = 1 << 20;
}  // namespace

BatchPrefetcher::BatchPrefetcher(ShuffledBatches& stream, int64_t batch, int64_t first_row, int64_t count,
                                 int64_t first_step, int64_t n_steps, std::mutex& h5_mutex, Delivery delivery,
                                 int depth, Allocator allocator)
    : stream_(stream), reader_(stream.reader()), batch_(batch), first_row_(first_row), count_(count),
      d_(stream.reader().d_model()), first_step_(first_step), n_steps_(n_steps), h5_mutex_(h5_mutex),
      delivery_(delivery), depth_(depth),
      value_bytes_(delivery == Delivery::Float32 ? 4 : store_dtype_bytes(parse_store_dtype(stream.reader().manifest().dtype))),
      allocator_(std::move(allocator)), slot_step_(size_t(depth), -1) {
  SAE_ASSERT(depth >= 2, "prefetch depth must be >= 2 (one slot in use, one being filled)");
  if (!allocator_.allocate) {
    allocator_.allocate = [](size_t bytes) -> void* { return new uint8_t[bytes]; };
    allocator_.release = [](void* p) { delete[] static_cast<uint8_t*>(p); };
  }
  const size_t slot_bytes = size_t(std::max<int64_t>(count, 1) * d_ * value_bytes_);
  for (int i = 0; i < depth; ++i) {
    slots_.push_back(allocator_.allocate(slot_bytes));
    if (slots_.back() == nullptr) internal_error("cannot allocate a batch buffer of " + std::to_string(slot_bytes) + " bytes");
  }
  consumed_ = first_step - 1;
  // The windows these steps need: from the one holding the first row to the one holding the last.
  int64_t first_window = -1, end_pos = 0;
  if (count > 0 && first_step < n_steps) {
    need_until_ = first_step * batch + first_row;
    first_window = stream_.window_at(need_until_);
    end_pos = (n_steps - 1) * batch + first_row + count;
  }
  loader_ = std::thread([this, first_window, end_pos] {
    if (first_window < 0) return;
    for (int64_t index = first_window;; ++index) {
      StreamWindow plan;
      stream_.plan(index, plan);  // only this thread uses the stream from here on
      Window* w = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        // One window ahead of the one in use, more only when a batch needs them together.
        cv_.wait(lock, [&] { return stop_ || windows_.size() < 2 || windows_.back().plan.end <= need_until_; });
        if (stop_) return;
        windows_.push_back(Window{std::move(plan), nullptr, false, nullptr});
        w = &windows_.back();  // a deque keeps references across push_back/pop_front
        if (!spare_.empty()) {
          w->rows = std::move(spare_.back());
          spare_.pop_back();
        } else {
          w->rows = std::make_unique<RawRows>();
        }
      }
      std::exception_ptr error;
      try {
        reader_.load_rows(w->plan.runs, *w->rows, &h5_mutex_);
      } catch (...) {
        error = std::current_exception();
      }
      const bool last = w->plan.end >= end_pos;
      {
        std::lock_guard<std::mutex> lock(mu_);
        w->ready = true;
        w->error = error;
      }
      cv_.notify_all();
      if (error || last) return;
    }
  });
  gatherer_ = std::thread([this] { gather_steps(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  gatherer_.join();
  loader_.join();
  for (void* p : slots_) allocator_.release(p);
}

void BatchPrefetcher::gather(int64_t step, void* out) {
  const int64_t first = step * batch_ + first_row_;
  for (int64_t pos = first; pos < first + count_;) {
    const Window* w = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      need_until_ = pos;
      cv_.notify_all();
      auto holding = [&] {
        for (const Window& c : windows_)
          if (c.plan.begin <= pos && pos < c.plan.end && c.ready) return &c;
        return static_cast<const Window*>(nullptr);
      };
      cv_.wait(lock, [&] { return stop_ || (w = holding()) != nullptr; });
      if (stop_) return;
      if (w->error) std::rethrow_exception(w->error);
    }
    // The window stays until this thread releases it: its rows are read without the lock.
    const int64_t take = std::min(first + count_ - pos, w->plan.end - pos), k0 = pos - first;
    const int32_t* order = w->plan.order.data() + (pos - w->plan.begin);
    const RawRows& rows = *w->rows;
    const int64_t row_bytes = d_ * value_bytes_, part_rows = std::max<int64_t>(1, kGatherPartBytes / row_bytes);
    auto part = [&](int64_t b) {
      const int64_t lo = b * part_rows, hi = std::min(take, lo + part_rows);
      if (delivery_ == Delivery::Float32) {
        float* dst = static_cast<float*>(out) + (k0 + lo) * d_;
        for (int64_t i = lo; i < hi; ++i, dst += d_) rows.widen(order[i], 1, 1.0f, dst);
      } else {
        auto* dst = static_cast<uint8_t*>(out) + (k0 + lo) * row_bytes;
        for (int64_t i = lo; i < hi; ++i, dst += row_bytes) std::memcpy(dst, rows.row(order[i]), size_t(row_bytes));
      }
    };
    const int64_t parts = (take + part_rows - 1) / part_rows;
    if (parts <= 1) {
      part(0);
    } else {
      reader_.pool().parallel_for(parts, part);
    }
    pos += take;
  }
}

void BatchPrefetcher::gather_steps() {
  for (int64_t s = first_step_; s < n_steps_; ++s) {
    const size_t slot = size_t(s % depth_);
    {
      // The slot is free once the consumer moved past the step it held (s - depth).
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || consumed_ >= s - depth_ + 1; });
      if (stop_) return;
    }
    try {
      gather(s, slots_[slot]);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      error_step_ = s;
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      slot_step_[slot] = s;
      // Windows that end before the next step's rows are done with: their buffers go back.
      const int64_t next = s + 1 < n_steps_ ? (s + 1) * batch_ + first_row_ : std::numeric_limits<int64_t>::max();
      while (!windows_.empty() && windows_.front().ready && windows_.front().plan.end <= next) {
        if (windows_.front().rows) spare_.push_back(std::move(windows_.front().rows));
        windows_.pop_front();
      }
    }
    cv_.notify_all();
  }
}

void* BatchPrefetcher::get(int64_t step) {
  SAE_ASSERT(step == consumed_ + 1 && step < n_steps_, "prefetched steps must be taken in order");
  const size_t slot = size_t(step % depth_);
  std::unique_lock<std::mutex> lock(mu_);
  consumed_ = step - 1;  // the previous step's slot may be refilled now
  cv_.notify_all();
  cv_.wait(lock, [&] { return slot_step_[slot] == step || (error_ && error_step_ <= step); });
  if (slot_step_[slot] != step) std::rethrow_exception(error_);
  consumed_ = step;
  return slots_[slot];
}

}  // namespace saepipe
