// A few threads for the data path's per-chunk work off the HDF5 thread: checksums, dtype
// conversion, batch gathers. Workers sleep on a condition variable when idle (never spin), so
// an idle pool costs nothing on a shared node. Tasks never call HDF5 (Debian's build is not
// thread-safe): the HDF5 thread reads or writes chunks and posts the work on their bytes here.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace saepipe {

class WorkerPool {
 public:
  // n_threads <= 0: one per core this process may run on (thread_binding's allowed_cores), at
  // most 8.
  explicit WorkerPool(int n_threads = 0);
  ~WorkerPool();  // finishes queued tasks, joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return int(threads_.size()); }

  // Tasks posted together and waited for together. wait() also runs queued tasks on the
  // calling thread while it waits, and rethrows the first exception a task of the group threw
  // (tasks that record their own errors never throw).
  class Group {
   public:
    explicit Group(WorkerPool& pool) : pool_(pool) {}
    ~Group();  // waits (errors dropped: the owner is unwinding already)
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;
    void post(std::function<void()> task);
    void wait();

   private:
    friend class WorkerPool;
    WorkerPool& pool_;
    int64_t pending_ = 0;  // guarded by pool_.mu_
    std::exception_ptr error_;
  };

  // fn(i) for i in [0, n), spread over the workers and the calling thread; returns when all are
  // done, rethrowing the exception of the lowest i that threw.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  struct Task {
    std::function<void()> fn;
    Group* group;
  };
  void worker();
  void run(Task& task);  // runs it, records its error, settles its group; mu_ not held

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Task> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace saepipe
