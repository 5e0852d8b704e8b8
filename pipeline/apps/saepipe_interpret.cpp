// saepipe-interpret: the interpret stage as its own MPI program.
#include "pipeline/core/stage_main.hpp"
#include "pipeline/stages/stages.hpp"

int main(int argc, char** argv) { return saepipe::stage_main(argc, argv, "interpret", saepipe::run_interpret); }
