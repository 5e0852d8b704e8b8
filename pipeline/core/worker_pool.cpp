#include "pipeline/core/worker_pool.hpp"

#include <algorithm>
#include <atomic>
#include <utility>

#include "pipeline/core/thread_binding.hpp"

namespace saepipe {

WorkerPool::WorkerPool(int n_threads) {
  if (n_threads <= 0) n_threads = std::clamp(allowed_cores(), 1, 8);
  threads_.reserve(size_t(n_threads));
  for (int i = 0; i < n_threads; ++i) threads_.emplace_back([this] { worker(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::run(Task& task) {
  std::exception_ptr error;
  try {
    task.fn();
  } catch (...) {
    error = std::current_exception();
  }
  task.fn = nullptr;  // release what the task holds before the group is settled
  std::lock_guard<std::mutex> lock(mu_);
  if (error && !task.group->error_) task.group->error_ = error;
  if (--task.group->pending_ == 0) done_cv_.notify_all();
}

void WorkerPool::worker() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    run(task);
  }
}

void WorkerPool::Group::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(pool_.mu_);
    ++pending_;
    pool_.queue_.push_back({std::move(task), this});
  }
  pool_.work_cv_.notify_one();
}

void WorkerPool::Group::wait() {
  std::unique_lock<std::mutex> lock(pool_.mu_);
  while (pending_ > 0) {
    // Help: run a queued task of this group rather than sleep beside it.
    auto mine = std::find_if(pool_.queue_.begin(), pool_.queue_.end(), [&](const Task& t) { return t.group == this; });
    if (mine != pool_.queue_.end()) {
      Task task = std::move(*mine);
      pool_.queue_.erase(mine);
      lock.unlock();
      pool_.run(task);
      lock.lock();
      continue;
    }
    pool_.done_cv_.wait(lock);
  }
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

WorkerPool::Group::~Group() {
  try {
    wait();
  } catch (...) {
  }
}

void WorkerPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  // Each index records its own error so the lowest one is rethrown whatever the timing.
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::atomic<int64_t> next{0};
  auto drain = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      try {
        fn(i);
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    }
  };
  {
    Group group(*this);
    const int64_t helpers = std::min<int64_t>(size(), n - 1);
    for (int64_t t = 0; t < helpers; ++t) group.post(drain);
    drain();
    group.wait();
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace saepipe
