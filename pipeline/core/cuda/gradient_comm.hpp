// GradientComm on device memory (pipeline/core/gradient_comm.hpp): NCCL, and MPI through
// pinned host memory for when NCCL cannot serve.
//
// Shape legend: n values of one flat gradient vector (float32 or float64, device memory).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "pipeline/core/gradient_comm.hpp"

namespace saepipe {
class MpiEnv;
}

namespace saepipe::cuda {

// Whether this build has NCCL (SAEPIPE_HAVE_NCCL).
bool have_nccl();

// Sends `bytes` bytes from rank 0 to every rank (in place). The trainer passes MPI_Bcast;
// a single-process test passes a function that does nothing.
using BroadcastBytes = std::function<void(void* data, size_t bytes)>;

#ifdef SAEPIPE_HAVE_NCCL
// ncclAllReduce (sum) on the communicator of `nranks` ranks, one GPU each (the current
// device), on its own non-blocking stream. Bootstrap: rank 0 makes the unique id, which
// `broadcast` carries to the other ranks, then ncclCommInitRank. With WireType::BFloat16 the
// gradient is rounded to bf16 into a scratch buffer, summed as ncclBfloat16 and widened back.
class NcclComm final : public GradientComm {
 public:
  NcclComm(int rank, int nranks, WireType wire, const BroadcastBytes& broadcast);
  ~NcclComm() override;
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  void start(float* data, int64_t n, void* stream) override;
  void start(double* data, int64_t n, void* stream) override;
  // With a stream: orders it after the sums. Without: waits on the host, checking NCCL's
  // asynchronous errors as it polls; a failed or silent peer (nothing completes within
  // SAEPIPE_NCCL_TIMEOUT_S seconds, default 1800) aborts the communicator and raises an
  // internal error naming it, so a dead peer ends the job with a message instead of a hang.
  void wait(void* stream) override;
  std::string describe() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
#endif

// Device memory through pinned host memory and a host GradientComm (MpiHostComm): start()
// copies to the host on the producer stream, waits for it, sums on the host, and queues the
// copy back on the same stream (so that stream needs no wait; wait() orders other streams or
// the host after it).
class StagedDeviceComm final : public GradientComm {
 public:
  explicit StagedDeviceComm(std::unique_ptr<GradientComm> host);
  ~StagedDeviceComm() override;
  StagedDeviceComm(const StagedDeviceComm&) = delete;
  StagedDeviceComm& operator=(const StagedDeviceComm&) = delete;

  void start(float* data, int64_t n, void* stream) override;
  void start(double* data, int64_t n, void* stream) override;
  void wait(void* stream) override;
  std::string describe() const override;

 private:
  template <class T>
  void stage(T* data, int64_t n, cudaStream_t stream);

  std::unique_ptr<GradientComm> host_;
  void* pinned_ = nullptr;  // bytes
  int64_t capacity_ = 0;
  cudaEvent_t done_ = nullptr;  // the last copy back
};

// The gradient communicator of a GPU rank (the device already selected, see select_device):
// the ranks exchange (host, PCI bus id) of their GPUs and choose_comm_backend decides, alike on
// every rank: NCCL with one rank per GPU, else MPI through host memory.
std::unique_ptr<GradientComm> make_device_gradient_comm(const MpiEnv& env, CommBackend requested, WireType wire);

}  // namespace saepipe::cuda
