// The CUDA backend: one GPU per rank (local rank -> device; ranks share a GPU only when a node
// has more ranks than GPUs, and then their gradients go through the MPI host path).
#include <cuda_runtime_api.h>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/model/cuda/decoder.hpp"
#include "pipeline/sae/cuda/train_step.hpp"
#include "pipeline/stats/cuda/feature_passes.hpp"
#include "pipeline/stages/backend.hpp"

namespace saepipe {

namespace {

// This build's device code is for one architecture (CMake's SAEPIPE_CUDA_ARCH, 90: Hopper).
constexpr int kComputeMajor = 9;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const MpiEnv& env) {
    device_ = cuda::select_device(env.local_rank());
    cuda::keep_pool_memory(device_);
    cudaDeviceProp prop{};
    SAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    describe_ = std::string("cuda (") + prop.name + ", GPU " + std::to_string(device_) + " of " +
                std::to_string(cuda::device_count()) + " on " + env.host() + " for local rank " +
                std::to_string(env.local_rank()) + ")";
  }

  std::string device() const override { return "cuda"; }
  std::string describe() const override { return describe_; }

  std::unique_ptr<TransformerModel> load_transformer(const std::string& model_dir,
                                                     const std::vector<std::string>& hook_names) const override {
    // The generic decoder on the GPU (every family, Hugging Face or GGUF), fp32 matmuls: the
    // store matches the CPU's to ~1e-5 (tests/gpu/test_cuda_decoder.cpp).
    return cuda::load_transformer_cuda(model_dir, hook_names, cuda::ActType::F32);
  }
  std::unique_ptr<TransformerModel> load_transformer_full(const std::string& model_dir) const override {
    // The spliced runs of CE loss (forward_final) on the GPU; the SAE edits and the logits
    // (unembedding, logit effects) on the host, as on the CPU backend.
    return cuda::load_transformer_full_cuda(model_dir, cuda::ActType::F32);
  }
  std::unique_ptr<TrainStep> make_train_step(const TrainStepConfig& config, const MpiEnv& data_group) const override {
    refuse_cpu_only(config);
    return cuda::make_cuda_train_step(config, data_group);
  }
  std::unique_ptr<TrainStep> make_sharded_train_step(const TrainStepConfig& config,
                                                     const LatentGrid& grid) const override {
    refuse_cpu_only(config);  // the sharded device step: topk, batchtopk, relu, jumprelu SAEs
    return cuda::make_cuda_sharded_train_step(config, grid);
  }
  std::unique_ptr<FeaturePasses> make_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                     int64_t hist_bins, const ExampleOptions& opt) const override {
    refuse_cpu_only(params);
    return cuda::make_cuda_feature_passes(params, config, hist_bins, opt);
  }
  std::unique_ptr<FeaturePasses> make_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                             int64_t hist_bins, const ExampleOptions& opt,
                                                             const LatentGrid& grid) const override {
    refuse_cpu_only(params);
    return cuda::make_cuda_sharded_feature_passes(params, config, hist_bins, opt, grid);
  }

 private:
  // Dictionaries whose encoder the device passes do not have (every rank: one line, exit 2).
  static void refuse_cpu_only(const SaeParams& params) {
    if (params.gated || params.transcoder || params.layers > 1)
      user_error(std::string(params.gated ? "gated SAEs" : params.transcoder ? "transcoders" : "crosscoders") +
                 " are evaluated by the cpu backend only for now; set run.device = \"cpu\"");
  }
  // Dictionaries with a CPU step only (every rank sees the same setting: one line, exit 2).
  static void refuse_cpu_only(const TrainStepConfig& config) {
    if (config.sae.architecture == Architecture::Matryoshka || config.sae.architecture == Architecture::Gated)
      user_error("train.architecture: \"" + to_string(config.sae.architecture) +
                 "\" is not on the cuda backend yet; set run.device = \"cpu\"");
    if (config.transcoder || config.layers > 1)
      user_error(std::string(config.transcoder ? "train.target_hook: transcoders" : "train.hooks: crosscoders") +
                 " are not on the cuda backend yet; set run.device = \"cpu\"");
  }

  int device_ = 0;
  std::string describe_;
};

}  // namespace

CudaStatus cuda_status() {
  CudaStatus s;
  s.built = true;
  int n = 0;
  const cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver / no device" error
    s.detail = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(rc) + ", " + cudaGetErrorString(rc);
    return s;
  }
  if (n == 0) s.detail = "cudaGetDeviceCount found none";
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    if (prop.major == kComputeMajor) {
      ++s.devices;
    } else {
      s.detail += std::string(s.detail.empty() ? "" : "; ") + prop.name + " is sm_" + std::to_string(prop.major) +
                  std::to_string(prop.minor) + ", this build has sm_" + std::to_string(kComputeMajor) + "0 code only";
    }
  }
  return s;
}

std::unique_ptr<Backend> make_cuda_backend(const MpiEnv& env) { return std::make_unique<CudaBackend>(env); }

}  // namespace saepipe
