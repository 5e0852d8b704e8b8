// saepipe-harvest: the harvest stage as its own MPI program.
#include "pipeline/core/stage_main.hpp"
#include "pipeline/stages/stage_driver.hpp"
#include "pipeline/stages/stages.hpp"

int main(int argc, char** argv) {
  using namespace saepipe;
  return stage_main(argc, argv, "harvest", with_backend("harvest", run_harvest));
}
