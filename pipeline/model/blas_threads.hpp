// BLAS's own thread pool off for a scope. The forward pass splits each matmul by rows over the
// OpenMP threads, each calling BLAS; BLAS threads on top of that would fight OpenMP's over the
// cores. Setting the pool size is itself slow (it wakes the pool), so a harvest holds one guard
// for its whole run rather than one per forward pass.
#pragma once
#include <cblas.h>

namespace saepipe {

class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(saved_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

}  // namespace saepipe
