// Main of the multi-rank GoogleTest binary (tests/mpi/*.cpp), run under mpirun with 1-4 ranks
// (tests/CMakeLists.txt). Every rank runs every test; a test's collectives are called by all
// ranks in the same order, and checks are non-fatal (EXPECT_*) so a failure on one rank
// cannot leave the others waiting. Only rank 0 prints the progress lines; a failure on any
// rank is printed by that rank and makes mpirun exit non-zero.
#include <gtest/gtest.h>
#include <mpi.h>

#include "pipeline/core/mpi_env.hpp"

namespace {
// Prints failures only (for ranks other than 0).
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  saepipe::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  const int local = RUN_ALL_TESTS();
  int any = local;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any;
}
