// `saepipe run`: the stages in order, each as its own MPI program under mpirun (or run
// directly for one rank). The first stage that fails stops the chain with its exit code. A
// signal to the driver (Ctrl-C) asks the running stage to checkpoint and stop (exit 75,
// pipeline/core/interrupt.hpp); a second one ends it at once.
#pragma once
#include <string>
#include <vector>

namespace saepipe {

struct Job;

extern const std::vector<std::string> kStages;  // harvest, train, stats, interpret

struct LaunchOptions {
  std::vector<std::string> only;  // empty: every stage
  int ranks = 0;                  // 0: [resources.<stage>].ranks of the job
  std::string launcher;           // empty: $SAEPIPE_MPIRUN, else "mpirun"
};

// Returns the exit code of the first failing stage, or 0.
int run_stages(const Job& job, const std::string& job_arg, const LaunchOptions& opt);

// Directory holding the saepipe programs (that of the running binary).
std::string program_dir();

// The command line that runs one stage (for printing and for sbatch scripts).
std::vector<std::string> stage_command(const std::string& stage, const std::string& job_arg, int ranks,
                                       const std::string& launcher);

}  // namespace saepipe
