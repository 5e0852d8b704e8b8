// GPU test main: MPI is initialised once (one rank), for the code that takes an MpiEnv (the
// training step, the stats passes' reductions). Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include "pipeline/core/mpi_env.hpp"

int main(int argc, char** argv) {
  saepipe::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
