// NcclComm, StagedDeviceComm and the choice between them (pipeline/core/cuda/gradient_comm.hpp).
//
// Shape legend: n values of one flat gradient vector (float32 or float64, device memory).
#include "pipeline/core/cuda/gradient_comm.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"

namespace saepipe::cuda {

bool have_nccl() {
#ifdef SAEPIPE_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

#ifdef SAEPIPE_HAVE_NCCL
struct NcclComm::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;          // the communication stream
  cudaEvent_t ready = nullptr, done = nullptr;
  WireType wire = WireType::Float32;
  __nv_bfloat16* wire_buf = nullptr;      // bf16 scratch, grown on the communication stream
  int64_t wire_capacity = 0;
  int rank = 0, nranks = 1;
  double timeout_s = 1800;  // SAEPIPE_NCCL_TIMEOUT_S
};

NcclComm::NcclComm(int rank, int nranks, WireType wire, const BroadcastBytes& broadcast) : impl_(new Impl) {
  SAE_ASSERT(nranks >= 1 && rank >= 0 && rank < nranks, "bad NCCL rank / size");
  impl_->wire = wire;
  impl_->rank = rank;
  impl_->nranks = nranks;
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) SAE_NCCL_CHECK(ncclGetUniqueId(&id));
  broadcast(&id, sizeof id);
  SAE_NCCL_CHECK(ncclCommInitRank(&impl_->comm, nranks, id, rank));
  if (const char* t = std::getenv("SAEPIPE_NCCL_TIMEOUT_S"); t && std::atof(t) > 0) impl_->timeout_s = std::atof(t);
  SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  SAE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->ready, cudaEventDisableTiming));
  SAE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->done, cudaEventDisableTiming));
}

NcclComm::~NcclComm() {
  // Destructors cannot throw: releases are not checked.
  if (impl_->wire_buf) cudaFreeAsync(impl_->wire_buf, impl_->stream);
  if (impl_->stream) cudaStreamSynchronize(impl_->stream);
  if (impl_->comm) ncclCommDestroy(impl_->comm);
  if (impl_->ready) cudaEventDestroy(impl_->ready);
  if (impl_->done) cudaEventDestroy(impl_->done);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

void NcclComm::start(float* data, int64_t n, void* stream) {
  SAE_ASSERT(n >= 0, "negative gradient size");
  Impl& s = *impl_;
  // The communication stream waits for the producer's work.
  SAE_CUDA_CHECK(cudaEventRecord(s.ready, static_cast<cudaStream_t>(stream)));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.ready, 0));
  if (n > 0) {
    if (s.wire == WireType::Float32) {
      SAE_NCCL_CHECK(ncclAllReduce(data, data, size_t(n), ncclFloat32, ncclSum, s.comm, s.stream));
    } else {
      if (s.wire_capacity < n) {
        // Freed in stream order: earlier sums on this stream still use the old buffer.
        if (s.wire_buf) SAE_CUDA_CHECK(cudaFreeAsync(s.wire_buf, s.stream));
        SAE_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&s.wire_buf), sizeof(__nv_bfloat16) * size_t(n), s.stream));
        s.wire_capacity = n;
      }
      to_bf16(data, n, s.wire_buf, s.stream);
      SAE_NCCL_CHECK(ncclAllReduce(s.wire_buf, s.wire_buf, size_t(n), ncclBfloat16, ncclSum, s.comm, s.stream));
      from_bf16(s.wire_buf, n, data, s.stream);
    }
  }
  SAE_CUDA_CHECK(cudaEventRecord(s.done, s.stream));
}

void NcclComm::start(double* data, int64_t n, void* stream) {
  SAE_ASSERT(n >= 0, "negative gradient size");
  Impl& s = *impl_;
  SAE_CUDA_CHECK(cudaEventRecord(s.ready, static_cast<cudaStream_t>(stream)));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.ready, 0));
  if (n > 0) SAE_NCCL_CHECK(ncclAllReduce(data, data, size_t(n), ncclFloat64, ncclSum, s.comm, s.stream));
  SAE_CUDA_CHECK(cudaEventRecord(s.done, s.stream));
}

void NcclComm::wait(void* stream) {
  Impl& s = *impl_;
  if (stream) {
    SAE_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), s.done, 0));
    return;
  }
  // Poll rather than block: a peer that died leaves the collective waiting forever, which
  // NCCL reports as an asynchronous error (or nothing at all, if the peer hangs).
  const auto t0 = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    const cudaError_t q = cudaEventQuery(s.done);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) SAE_CUDA_CHECK(q);
    ncclResult_t async_rc = ncclSuccess;
    SAE_NCCL_CHECK(ncclCommGetAsyncError(s.comm, &async_rc));
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (async_rc != ncclSuccess || waited > s.timeout_s) {
      ncclCommAbort(s.comm);  // frees the stuck kernels; the communicator is unusable after
      s.comm = nullptr;
      internal_error(async_rc != ncclSuccess
                         ? std::string("NCCL allreduce failed: ") + ncclGetErrorString(async_rc) +
                               " (a peer rank died or its network failed)"
                         : "NCCL allreduce did not complete in " + std::to_string(int64_t(s.timeout_s)) +
                               " s (SAEPIPE_NCCL_TIMEOUT_S): a peer rank is gone or hangs");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(polls < 1000 ? 20 : 1000));
  }
  ncclResult_t async_rc = ncclSuccess;
  SAE_NCCL_CHECK(ncclCommGetAsyncError(s.comm, &async_rc));
  SAE_NCCL_CHECK(async_rc);
}

std::string NcclComm::describe() const {
  int version = 0;
  SAE_NCCL_CHECK(ncclGetVersion(&version));
  return "nccl " + std::to_string(version) + " (" + std::to_string(impl_->nranks) + " ranks, " +
         to_string(impl_->wire) + " on the wire)";
}
#endif  // SAEPIPE_HAVE_NCCL

StagedDeviceComm::StagedDeviceComm(std::unique_ptr<GradientComm> host) : host_(std::move(host)) {
  SAE_ASSERT(host_ != nullptr, "StagedDeviceComm needs a host communicator");
  SAE_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
}

StagedDeviceComm::~StagedDeviceComm() {
  if (done_) {
    cudaEventSynchronize(done_);
    cudaEventDestroy(done_);
  }
  if (pinned_) cudaFreeHost(pinned_);
}

template <class T>
void StagedDeviceComm::stage(T* data, int64_t n, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative gradient size");
  // The previous copy back must have left the pinned buffer before it is reused.
  SAE_CUDA_CHECK(cudaEventSynchronize(done_));
  const int64_t bytes = n * int64_t(sizeof(T));
  if (capacity_ < bytes) {
    if (pinned_) SAE_CUDA_CHECK(cudaFreeHost(pinned_));
    pinned_ = nullptr;
    SAE_CUDA_CHECK(cudaMallocHost(&pinned_, size_t(bytes)));
    capacity_ = bytes;
  }
  if (n > 0) {
    SAE_CUDA_CHECK(cudaMemcpyAsync(pinned_, data, size_t(bytes), cudaMemcpyDeviceToHost, stream));
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  host_->allreduce_sum(static_cast<T*>(pinned_), n, nullptr);  // every rank calls it, also with n = 0
  if (n > 0) SAE_CUDA_CHECK(cudaMemcpyAsync(data, pinned_, size_t(bytes), cudaMemcpyHostToDevice, stream));
  SAE_CUDA_CHECK(cudaEventRecord(done_, stream));
}

void StagedDeviceComm::start(float* data, int64_t n, void* stream) { stage(data, n, static_cast<cudaStream_t>(stream)); }
void StagedDeviceComm::start(double* data, int64_t n, void* stream) { stage(data, n, static_cast<cudaStream_t>(stream)); }

void StagedDeviceComm::wait(void* stream) {
  if (stream) SAE_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), done_, 0));
  else SAE_CUDA_CHECK(cudaEventSynchronize(done_));
}

std::string StagedDeviceComm::describe() const { return "device memory staged through the host, " + host_->describe(); }

std::unique_ptr<GradientComm> make_device_gradient_comm(const MpiEnv& env, CommBackend requested, WireType wire) {
  // Each rank's GPU, named across the job: host name + PCI bus id, in a fixed-size record.
  constexpr int kRecord = 256;
  int device = 0;
  SAE_CUDA_CHECK(cudaGetDevice(&device));
  char bus[64] = {};
  SAE_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, int(sizeof bus), device));
  std::string me = env.host() + "/" + bus;
  me.resize(kRecord - 1, '\0');
  std::vector<char> mine(me.begin(), me.end());
  mine.push_back('\0');
  const auto all = env.allgather_bytes(mine.data(), kRecord);
  std::vector<std::string> ids;
  for (int r = 0; r < env.size(); ++r) ids.emplace_back(all.data() + size_t(r) * kRecord);
  const CommBackend backend = choose_comm_backend(requested, have_nccl(), ids);
#ifdef SAEPIPE_HAVE_NCCL
  if (backend == CommBackend::Nccl) {
    MPI_Comm comm = env.comm();
    return std::make_unique<NcclComm>(env.rank(), env.size(), wire, [comm](void* data, size_t bytes) {
      SAE_MPI_CHECK(MPI_Bcast(data, int(bytes), MPI_BYTE, 0, comm));
    });
  }
#endif
  return std::make_unique<StagedDeviceComm>(std::make_unique<MpiHostComm>(env, wire));
}

}  // namespace saepipe::cuda
