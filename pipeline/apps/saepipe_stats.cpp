// saepipe-stats: the stats stage as its own MPI program.
#include "pipeline/core/stage_main.hpp"
#include "pipeline/stages/stages.hpp"

int main(int argc, char** argv) { return saepipe::stage_main(argc, argv, "stats", saepipe::run_stats); }
