// `saepipe submit` and `saepipe status`: one sbatch script per stage under
// runs/<name>/slurm/, submitted chained with --dependency=afterok so a failed stage cancels
// its dependents (--kill-on-invalid-dep); re-submitting resumes, since every stage skips
// what is complete. Ranks start with srun when the cluster's MPI plugins include PMIx,
// otherwise with mpirun inside the allocation ([resources.<stage>] launcher overrides).
#pragma once
#include <string>
#include <vector>

namespace saepipe {

struct Job;

struct SubmitOptions {
  std::vector<std::string> only;  // empty: every stage
  bool dry_run = false;           // write and print the scripts, submit nothing
};

// Returns 0, or the exit code of the failing sbatch. Prints scripts / job ids to stdout.
int submit_job(const Job& job, const SubmitOptions& opt);

// The sbatch script of one stage (public for tests).
std::string sbatch_script(const Job& job, const std::string& stage, const std::string& job_snapshot);

// One line per stage: its outputs' state in the run directory and, when it was submitted,
// the SLURM job id and state.
std::string run_status(const Job& job);

}  // namespace saepipe
