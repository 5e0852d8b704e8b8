// The CUDA backend's entry points in a build without CUDA (linked instead of cuda/backend.cpp):
// no devices, and run.device = "cuda" is refused before this is ever asked for a backend.
#include "pipeline/core/errors.hpp"
#include "pipeline/stages/backend.hpp"

namespace saepipe {

CudaStatus cuda_status() { return {false, 0, "this saepipe was built without CUDA"}; }

std::unique_ptr<Backend> make_cuda_backend(const MpiEnv&) {
  internal_error("the CUDA backend is not in this build (choose_device refuses run.device = cuda)");
}

}  // namespace saepipe
