#include "pipeline/core/gradient_comm.hpp"

#include <algorithm>
#include <set>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/float16.hpp"
#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

std::string to_string(WireType w) { return w == WireType::BFloat16 ? "bfloat16" : "float32"; }

namespace {

// MPI user op: inout[i] = bf16(float(in[i]) + float(inout[i])). Commutative: a + b == b + a
// exactly in float, and both round the same way.
void bf16_sum_op(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

constexpr int64_t kChunk = int64_t(1) << 28;  // MPI counts are int

}  // namespace

MpiHostComm::MpiHostComm(const MpiEnv& env, WireType wire) : comm_(env.comm()), wire_(wire) {
  if (wire_ == WireType::BFloat16) SAE_MPI_CHECK(MPI_Op_create(&bf16_sum_op, 1, &bf16_sum_));
}

MpiHostComm::~MpiHostComm() {
  if (bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
}

void MpiHostComm::start(float* data, int64_t n, void* stream) {
  SAE_ASSERT(stream == nullptr, "MpiHostComm works on host memory; wrap it in StagedDeviceComm for device memory");
  SAE_ASSERT(n >= 0, "negative gradient size");
  if (wire_ == WireType::Float32) {
    for (int64_t off = 0; off < n; off += kChunk) {
      const int count = int(std::min(kChunk, n - off));
      SAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + off, count, MPI_FLOAT, MPI_SUM, comm_));
    }
    return;
  }
  if (int64_t(wire_buf_.size()) < n) wire_buf_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) wire_buf_[size_t(i)] = float_to_bf16(data[i]);
  for (int64_t off = 0; off < n; off += kChunk) {
    const int count = int(std::min(kChunk, n - off));
    SAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, wire_buf_.data() + off, count, MPI_UINT16_T, bf16_sum_, comm_));
  }
  for (int64_t i = 0; i < n; ++i) data[i] = bf16_to_float(wire_buf_[size_t(i)]);
}

void MpiHostComm::start(double* data, int64_t n, void* stream) {
  SAE_ASSERT(stream == nullptr, "MpiHostComm works on host memory; wrap it in StagedDeviceComm for device memory");
  SAE_ASSERT(n >= 0, "negative gradient size");
  for (int64_t off = 0; off < n; off += kChunk) {
    const int count = int(std::min(kChunk, n - off));
    SAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + off, count, MPI_DOUBLE, MPI_SUM, comm_));
  }
}

std::string MpiHostComm::describe() const { return "mpi-host (" + to_string(wire_) + " on the wire)"; }

CommBackend choose_comm_backend(CommBackend requested, bool have_nccl,
                                const std::vector<std::string>& device_ids) {
  const std::set<std::string> distinct(device_ids.begin(), device_ids.end());
  const bool shared = distinct.size() < device_ids.size();
  switch (requested) {
    case CommBackend::MpiHost:
      return CommBackend::MpiHost;
    case CommBackend::Nccl:
      if (!have_nccl) user_error("gradient communication: NCCL requested but this build has no NCCL");
      if (shared)
        user_error("gradient communication: NCCL requested but several ranks share one GPU "
                   "(run one rank per GPU, or let it fall back to MPI)");
      return CommBackend::Nccl;
    case CommBackend::Auto:
      break;
  }
  return have_nccl && !shared ? CommBackend::Nccl : CommBackend::MpiHost;
}

}  // namespace saepipe
