// The MPI environment a stage runs in: rank, size, host, local rank (→ device), and the
// collective helpers that keep every rank in step. Passed explicitly; no globals.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace saepipe {

class MpiEnv {
 public:
  // Wraps an already-initialised MPI_COMM_WORLD (MpiSession below does the init).
  explicit MpiEnv(MPI_Comm comm = MPI_COMM_WORLD);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  const std::string& host() const { return host_; }
  MPI_Comm comm() const { return comm_; }
  bool is_root() const { return rank_ == 0; }

  void barrier() const;
  // Runs `fn` on every rank. If it throws a SaeError on any rank, every rank throws the
  // error of the lowest failing rank (kind and text), so the failure is handled as one
  // every rank detected: rank 0 prints one line and all exit cleanly, with no hang.
  void all_or_none(const std::function<void()>& fn) const;

  // Rank 0 runs `produce`; its string (or its error) reaches every rank.
  std::string broadcast_from_root(const std::function<std::string()>& produce) const;
  void broadcast_string(std::string& s, int root = 0) const;

  void allreduce_sum(double* data, int64_t n) const;
  void allreduce_sum(int64_t* data, int64_t n) const;
  void allreduce_sum(float* data, int64_t n) const;
  void allreduce_sum(int32_t* data, int64_t n) const;
  void allreduce_max(float* data, int64_t n) const;
  double allreduce_sum(double v) const;
  int64_t allreduce_sum(int64_t v) const;
  int allreduce_max(int v) const;
  // Every rank's `local` values concatenated in rank order, on every rank.
  std::vector<float> allgather(const std::vector<float>& local) const;
  // Every rank's `bytes` bytes (the same count on every rank) concatenated in rank order.
  std::vector<char> allgather_bytes(const void* data, int64_t bytes) const;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::string host_;
};

// Runs `fn`, a stretch in which the ranks of `env` are inside a library's collective calls
// (parallel HDF5, pipeline/io/h5_parts.hpp). An error there on one rank cannot be agreed on (the
// others wait in the library), so that rank prints "[rank r@host] file:line message" and ends
// the run with MPI_Abort and the error's exit code.
void abort_on_error(const MpiEnv& env, const std::function<void()>& fn);

// RAII MPI_Init/MPI_Finalize for the stage mains and tests.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

}  // namespace saepipe
