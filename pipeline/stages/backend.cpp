// run.device decided for all ranks, and the CPU backend.
#include "pipeline/stages/backend.hpp"

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/model/transformer.hpp"
#include "pipeline/sae/train_step.hpp"
#include "pipeline/stats/feature_passes.hpp"

namespace saepipe {

namespace {

class CpuBackend final : public Backend {
 public:
  std::string device() const override { return "cpu"; }
  std::string describe() const override { return "cpu (OpenMP + BLAS)"; }
  std::unique_ptr<TransformerModel> load_transformer(const std::string& model_dir,
                                                     const std::vector<std::string>& hook_names) const override {
    return saepipe::load_transformer(model_dir, hook_names);
  }
  std::unique_ptr<TransformerModel> load_transformer_full(const std::string& model_dir) const override {
    return saepipe::load_transformer_full(model_dir);
  }
  std::unique_ptr<TrainStep> make_train_step(const TrainStepConfig& config, const MpiEnv& data_group) const override {
    return make_cpu_train_step(config, data_group);
  }
  std::unique_ptr<TrainStep> make_sharded_train_step(const TrainStepConfig& config,
                                                     const LatentGrid& grid) const override {
    return make_cpu_sharded_train_step(config, grid);
  }
  std::unique_ptr<FeaturePasses> make_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                     int64_t hist_bins, const ExampleOptions& opt) const override {
    return make_cpu_feature_passes(params, config, hist_bins, opt);
  }
  std::unique_ptr<FeaturePasses> make_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                             int64_t hist_bins, const ExampleOptions& opt,
                                                             const LatentGrid& grid) const override {
    return make_cpu_sharded_feature_passes(params, config, hist_bins, opt, grid);
  }
};

}  // namespace

std::unique_ptr<TrainStep> Backend::make_sharded_train_step(const TrainStepConfig&, const LatentGrid&) const {
  user_error("[resources.train] latent_shards > 1 is not implemented on the " + device() +
             " backend yet; use run.device = \"cpu\" or latent_shards = 1");
}

std::unique_ptr<FeaturePasses> Backend::make_sharded_feature_passes(const SaeParams&, const SaeConfig&, int64_t,
                                                                   const ExampleOptions&, const LatentGrid&) const {
  user_error("[resources.stats] latent_shards > 1 is not implemented on the " + device() +
             " backend yet; use run.device = \"cpu\" or latent_shards = 1");
}

std::string decide_device(const std::string& requested, bool built, int min_devices) {
  if (requested == "cpu") return "cpu";
  const bool cuda = built && min_devices > 0;
  if (requested == "auto") return cuda ? "cuda" : "cpu";
  SAE_ASSERT(requested == "cuda", "run.device \"" + requested + "\" passed the schema");
  return cuda ? "cuda" : "";
}

std::string choose_device(const std::string& requested, const std::string& job_path, const MpiEnv& env) {
  if (requested == "cpu") return "cpu";  // CUDA is not even asked
  const CudaStatus mine = cuda_status();
  const std::string key = job_path + ": run.device = \"" + requested + "\": ";
  if (requested == "cuda") {
    // Every rank knows whether the build has CUDA; a rank without a GPU is named by its own
    // error, which all_or_none hands to every rank (the lowest such rank's).
    if (!mine.built) user_error(key + "this saepipe was built without CUDA (no nvcc when it was configured)");
    env.all_or_none([&] {
      if (mine.devices == 0)
        user_error(key + "no GPU is visible to rank " + std::to_string(env.rank()) + " on " + env.host() + " (" +
                   mine.detail + ")");
    });
  }
  int min_devices = mine.devices;
  if (env.size() > 1) min_devices = -env.allreduce_max(-min_devices);
  const std::string device = decide_device(requested, mine.built, min_devices);
  SAE_ASSERT(!device.empty(), "run.device = cuda passed the checks above");
  return device;
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

std::unique_ptr<Backend> make_backend(const std::string& device, const MpiEnv& env) {
  if (device == "cuda") return make_cuda_backend(env);
  SAE_ASSERT(device == "cpu", "unknown device " + device);
  return make_cpu_backend();
}

}  // namespace saepipe
