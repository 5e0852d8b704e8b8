// A rank whose threads outnumber the cores it may run on: mpirun binds each rank to one core by
// default when there are at most two ranks, and a rank's OpenMP and BLAS threads then share that
// core (the stats stage measured at half speed that way). Warned once, by rank 0, at stage start.
#pragma once
#include <string>

namespace saepipe {

class MpiEnv;

// Cores this process may run on (its CPU affinity set); 0 when it can't be told.
int allowed_cores();
// Collective. When any rank may use more OpenMP threads than it has cores, rank 0 prints one
// warning line, "PROG: warning: ...", saying how many ranks and how to launch instead.
void warn_if_threads_exceed_cores(const MpiEnv& env, const std::string& prog);

}  // namespace saepipe
