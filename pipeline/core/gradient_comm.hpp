// Gradient communication for data-parallel training: every rank holds the whole model and,
// each step, the gradients of all ranks are summed in place so that every rank applies the
// same update (DESIGN.md "Parallelism").
//
// One interface, three implementations:
//   MpiHostComm       (here)                   MPI_Allreduce on host memory; the CPU path, and
//                                              the fallback behind the two below.
//   NcclComm          (cuda/gradient_comm.hpp) ncclAllReduce on device memory, on its own
//                                              stream; one rank per GPU.
//   StagedDeviceComm  (cuda/gradient_comm.hpp) device memory through pinned host memory and
//                                              any host GradientComm (MpiHostComm): used when
//                                              NCCL cannot serve (built without NCCL, or
//                                              several ranks share one GPU).
// The trainer calls start()/wait() the same way whichever it holds.
//
// Shape legend: n values of one flat gradient vector (float32 master gradients).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

class MpiEnv;

// What travels between ranks. BFloat16 halves the bytes; each value is rounded to bf16
// (round to nearest even) before the sum and every partial sum is rounded again, so the
// result carries bf16 precision (8 significant bits). The caller's buffer stays float32.
enum class WireType { Float32, BFloat16 };
std::string to_string(WireType w);

class GradientComm {
 public:
  virtual ~GradientComm() = default;
  // Starts summing data[0, n) over every rank, in place. `stream` is the cudaStream_t (as
  // void*) whose queued work produces `data`, or null for host memory; the sum starts after
  // that work. Several starts may be in flight; they complete in order.
  virtual void start(float* data, int64_t n, void* stream) = 0;
  // The same for float64 values, which travel as they are whatever the wire type (the train
  // step sums its float64 gradient so, as the CPU path does).
  virtual void start(double* data, int64_t n, void* stream) = 0;
  // Makes `stream` wait for every sum started so far (null: blocks the calling thread).
  virtual void wait(void* stream) = 0;
  // Human-readable, e.g. "mpi-host (float32)"; for logs.
  virtual std::string describe() const = 0;

  // start + wait.
  void allreduce_sum(float* data, int64_t n, void* stream = nullptr) {
    start(data, n, stream);
    wait(stream);
  }
  void allreduce_sum(double* data, int64_t n, void* stream = nullptr) {
    start(data, n, stream);
    wait(stream);
  }
};

// MPI_Allreduce over host memory, synchronous (start does the work, wait does nothing).
// Every rank gets bit-identical results (one MPI_Allreduce; Open MPI's algorithms reduce each
// element once and distribute it); the order of the sum over ranks is MPI's.
class MpiHostComm final : public GradientComm {
 public:
  MpiHostComm(const MpiEnv& env, WireType wire);
  ~MpiHostComm() override;
  MpiHostComm(const MpiHostComm&) = delete;
  MpiHostComm& operator=(const MpiHostComm&) = delete;

  void start(float* data, int64_t n, void* stream) override;
  void start(double* data, int64_t n, void* stream) override;
  void wait(void*) override {}
  std::string describe() const override;

 private:
  MPI_Comm comm_;
  WireType wire_;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  std::vector<uint16_t> wire_buf_;  // bf16 values, for WireType::BFloat16
};

// Which implementation a GPU trainer uses. Auto: NCCL when built with it and no two ranks
// share a GPU, else MPI through host memory.
enum class CommBackend { Auto, Nccl, MpiHost };
// The decision, from facts every rank holds alike (so every rank decides the same):
// `device_ids[r]` names rank r's GPU uniquely across the job (host name + PCI bus id).
// Nccl requested but impossible is a user error naming the reason.
CommBackend choose_comm_backend(CommBackend requested, bool have_nccl,
                                const std::vector<std::string>& device_ids);


}  // namespace saepipe
