// The training steps on one GPU (train_step.cu, and train_step_sharded.cu for a latent shard),
// made by the CUDA backend; the interface and the CPU steps are pipeline/sae/train_step.hpp.
#pragma once
#include <memory>

#include "pipeline/sae/train_step.hpp"

namespace saepipe::cuda {

// On the current device; `data_group` sums the gradients (NCCL when each rank has its own GPU,
// else MPI through pinned host memory).
std::unique_ptr<TrainStep> make_cuda_train_step(const TrainStepConfig& config, const MpiEnv& data_group);
// This rank's latent range on `grid` (topk, batchtopk, relu, jumprelu SAEs), on the current
// device; the shard group's and the data group's sums as above, each over its own
// communicator (NCCL when every rank of the group has its own GPU).
std::unique_ptr<TrainStep> make_cuda_sharded_train_step(const TrainStepConfig& config, const LatentGrid& grid);

}  // namespace saepipe::cuda
