// What differs by device, behind one interface (DESIGN.md "Backends"). The stages hold a
// Backend and never name a device: they ask it for a transformer (harvest; stats' CE splicing
// and logit effects), a training step for an SAE (train) and the feature passes (stats).
//
//   cpu   backend.cpp              the reference path (OpenMP + BLAS)
//   cuda  cuda/backend.cpp         one GPU per rank (local rank -> device), in saepipe_cuda;
//                                  a build without CUDA links no_cuda/backend.cpp instead
//
// run.device ("cpu" | "cuda" | "auto") is decided once per stage program by choose_device,
// agreed by every rank, and recorded in the resolved job, the log and the output fingerprints
// (stage_driver.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

class FeaturePasses;
class LatentGrid;
class MpiEnv;
class TrainStep;
class TransformerModel;
struct ExampleOptions;
struct SaeConfig;
struct SaeParams;
struct TrainStepConfig;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string device() const = 0;    // "cpu" | "cuda"
  virtual std::string describe() const = 0;  // one line for the log: the device and what runs on it

  // The model harvest runs, with the blocks the hooks need (as load_transformer,
  // pipeline/model/transformer.hpp; same errors).
  virtual std::unique_ptr<TransformerModel> load_transformer(const std::string& model_dir,
                                                             const std::vector<std::string>& hook_names) const = 0;
  // The whole model (forward_final, unembedding) for stats' CE loss and logit effects.
  virtual std::unique_ptr<TransformerModel> load_transformer_full(const std::string& model_dir) const = 0;
  // The training step of one SAE (pipeline/sae/train_step.hpp); `data_group` are the ranks
  // whose gradients it sums (every rank, unsharded).
  virtual std::unique_ptr<TrainStep> make_train_step(const TrainStepConfig& config, const MpiEnv& data_group) const = 0;
  // The training step of this rank's latent range on `grid` ([resources.train] latent_shards
  // > 1). Implemented by the CPU backend; the others refuse (a user error) until they are.
  virtual std::unique_ptr<TrainStep> make_sharded_train_step(const TrainStepConfig& config,
                                                             const LatentGrid& grid) const;
  // The encoder and the two passes of stats (pipeline/stats/feature_passes.hpp) for an SAE in
  // its inference configuration; `params` must outlive the passes.
  virtual std::unique_ptr<FeaturePasses> make_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                             int64_t hist_bins, const ExampleOptions& opt) const = 0;
  // The same for this rank's latent range on `grid` ([resources.stats] latent_shards > 1;
  // params holds the range: make_cpu_sharded_feature_passes). CPU only; the others refuse.
  virtual std::unique_ptr<FeaturePasses> make_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                                     int64_t hist_bins, const ExampleOptions& opt,
                                                                     const LatentGrid& grid) const;
};

// What this process can see of CUDA. Defined by the CUDA backend (cuda/backend.cpp) or, in
// builds without CUDA, by no_cuda/backend.cpp (built = false).
struct CudaStatus {
  bool built = false;  // this build has the CUDA backend
  int devices = 0;     // GPUs visible to this process
  std::string detail;  // why there are none (the driver's answer), or the devices' names
};
CudaStatus cuda_status();

// The device for run.device = `requested`, the same on every rank (collective): "cpu" stays
// cpu; "auto" is cuda when every rank sees a GPU, else cpu; "cuda" is a user error (exit 2,
// every rank alike, one line naming run.device and why) in a build without CUDA or when a
// rank sees no GPU. `job_path` names the job in that message.
std::string choose_device(const std::string& requested, const std::string& job_path, const MpiEnv& env);

// The rule above on facts every rank holds alike (for tests): `min_devices` is the fewest
// GPUs any rank sees. Returns "" for "cuda" when it cannot be had (the caller says why).
std::string decide_device(const std::string& requested, bool built, int min_devices);

// The backend for a device choose_device returned. cuda: the GPU of this rank's local rank
// (local_rank % devices, so ranks share GPUs only when a node has more ranks than GPUs).
std::unique_ptr<Backend> make_backend(const std::string& device, const MpiEnv& env);
std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_cuda_backend(const MpiEnv& env);  // cuda/backend.cpp or no_cuda/backend.cpp

}  // namespace saepipe
