// The training step on one GPU (train_step.cu), made by the CUDA backend; the interface and
// the CPU step are pipeline/sae/train_step.hpp.
#pragma once
#include <memory>

#include "pipeline/sae/train_step.hpp"

namespace saepipe::cuda {

// On the current device; `data_group` sums the gradients (NCCL when each rank has its own GPU,
// else MPI through pinned host memory).
std::unique_ptr<TrainStep> make_cuda_train_step(const TrainStepConfig& config, const MpiEnv& data_group);

}  // namespace saepipe::cuda
