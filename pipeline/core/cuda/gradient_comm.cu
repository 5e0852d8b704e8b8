// NcclComm, StagedDeviceComm and the choice between them (pipeline/core/cuda/gradient_comm.hpp).
//
// Shape legend: n values of one flat gradient vector (float32, device memory).
#include "pipeline/core/cuda/gradient_comm.hpp"

#include <mpi.h>

#include <cstring>
#include <string>
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

void NcclComm::wait(void* stream) {
  if (stream) {
    SAE_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), impl_->done, 0));
    return;
  }
  SAE_CUDA_CHECK(cudaEventSynchronize(impl_->done));
  ncclResult_t async_rc = ncclSuccess;
  SAE_NCCL_CHECK(ncclCommGetAsyncError(impl_->comm, &async_rc));
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

void StagedDeviceComm::start(float* data, int64_t n, void* stream_ptr) {
  SAE_ASSERT(n >= 0, "negative gradient size");
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  // The previous copy back must have left the pinned buffer before it is reused.
  SAE_CUDA_CHECK(cudaEventSynchronize(done_));
  if (capacity_ < n) {
    if (pinned_) SAE_CUDA_CHECK(cudaFreeHost(pinned_));
    pinned_ = nullptr;
    SAE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned_), sizeof(float) * size_t(n)));
    capacity_ = n;
  }
  if (n > 0) {
    SAE_CUDA_CHECK(cudaMemcpyAsync(pinned_, data, sizeof(float) * size_t(n), cudaMemcpyDeviceToHost, stream));
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  host_->allreduce_sum(pinned_, n, nullptr);  // every rank calls it, also with n = 0
  if (n > 0)
    SAE_CUDA_CHECK(cudaMemcpyAsync(data, pinned_, sizeof(float) * size_t(n), cudaMemcpyHostToDevice, stream));
  SAE_CUDA_CHECK(cudaEventRecord(done_, stream));
}

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
