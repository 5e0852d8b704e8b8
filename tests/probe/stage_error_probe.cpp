// saepipe-probe: the stage driver (pipeline/core/stage_main) around a stage that fails on
// purpose, so tests/mpi/test_stage_errors.sh can check the error policy of DESIGN.md with real
// ranks: SAEPIPE_PROBE=
//   one       the last rank alone raises a user error while the others wait in a barrier:
//             that rank prints "[rank r@host] file:line error: ..." and MPI_Abort ends all (2)
//   internal  the last rank alone throws a std::runtime_error: "[rank r@host] internal error"
//   all       every rank raises the same user error inside all_or_none: rank 0 prints one
//             line, every rank exits 2
//   none      succeeds
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/stage_main.hpp"

int main(int argc, char** argv) {
  return saepipe::stage_main(argc, argv, "probe", [](const saepipe::Job&, const saepipe::MpiEnv& env) {
    const char* m = std::getenv("SAEPIPE_PROBE");
    const std::string mode = m ? m : "none";
    const bool last = env.rank() == env.size() - 1;
    if (mode == "one") {
      if (last) saepipe::user_error("probe: only rank " + std::to_string(env.rank()) + " failed");
      env.barrier();  // the others wait for it: without MPI_Abort they would hang here
    } else if (mode == "internal") {
      if (last) throw std::runtime_error("probe: an exception outside saepipe's errors");
      env.barrier();
    } else if (mode == "all") {
      env.all_or_none([] { saepipe::user_error("probe: every rank failed"); });
    }
  });
}
