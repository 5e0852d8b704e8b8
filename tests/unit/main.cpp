// Test main: MPI is initialised once (one rank) so library code that takes an MpiEnv works.
#include <gtest/gtest.h>

#include "pipeline/core/mpi_env.hpp"

int main(int argc, char** argv) {
  saepipe::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
