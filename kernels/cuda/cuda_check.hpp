// Checks for CUDA, cuBLAS and NCCL calls: a failure raises saepipe's internal error (exit 1)
// with the call's text and the file:line where the macro was used (pipeline/core/errors.hpp).
//
//   SAE_CUDA_CHECK(cudaMemcpyAsync(...));
//   SAE_CUBLAS_CHECK(cublasGemmEx(...));
//   SAE_NCCL_CHECK(ncclAllReduce(...));        // only where SAEPIPE_HAVE_NCCL is defined
//   kernel<<<grid, block, 0, stream>>>(...); SAE_CUDA_LAUNCH_CHECK();
// Exceptions: destructors release resources unchecked (they cannot throw), and device_count()
// treats any failure of cudaGetDeviceCount as "no device".
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "pipeline/core/errors.hpp"

#ifdef SAEPIPE_HAVE_NCCL
#include <nccl.h>
#endif

namespace saepipe::cuda {

inline void check_cuda(cudaError_t rc, const char* call, SourceLocation where = SourceLocation::current()) {
  if (rc == cudaSuccess) return;
  internal_error(std::string("CUDA call failed: ") + call + ": " + cudaGetErrorName(rc) + " (" +
                     cudaGetErrorString(rc) + ")",
                 where);
}

inline void check_cublas(cublasStatus_t rc, const char* call, SourceLocation where = SourceLocation::current()) {
  if (rc == CUBLAS_STATUS_SUCCESS) return;
  internal_error(std::string("cuBLAS call failed: ") + call + ": " + cublasGetStatusName(rc) + " (" +
                     cublasGetStatusString(rc) + ")",
                 where);
}

#ifdef SAEPIPE_HAVE_NCCL
// Only ncclSuccess passes: saepipe's communicators are blocking, where ncclInProgress would
// mean an operation that has not completed, never a success.
inline void check_nccl(ncclResult_t rc, const char* call, SourceLocation where = SourceLocation::current()) {
  if (rc == ncclSuccess) return;
  internal_error(std::string("NCCL call failed: ") + call + ": " + ncclGetErrorString(rc) + " (" +
                     ncclGetLastError(nullptr) + ")",
                 where);
}
#endif

}  // namespace saepipe::cuda

#define SAE_CUDA_CHECK(call) ::saepipe::cuda::check_cuda((call), #call)
#define SAE_CUBLAS_CHECK(call) ::saepipe::cuda::check_cublas((call), #call)
#define SAE_NCCL_CHECK(call) ::saepipe::cuda::check_nccl((call), #call)
// After a kernel launch: a bad configuration is reported at once (asynchronous faults surface
// at the next synchronising call, checked the same way).
#define SAE_CUDA_LAUNCH_CHECK() ::saepipe::cuda::check_cuda(cudaGetLastError(), "kernel launch")
