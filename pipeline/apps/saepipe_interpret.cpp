// saepipe-interpret: the interpret stage as its own MPI program.
#include "pipeline/core/stage_main.hpp"
#include "pipeline/stages/stage_driver.hpp"
#include "pipeline/stages/stages.hpp"

int main(int argc, char** argv) {
  using namespace saepipe;
  return stage_main(argc, argv, "interpret", with_backend("interpret", run_interpret));
}
