// `saepipe submit` and `saepipe status`: one sbatch script per stage under
// runs/<name>/slurm/ (slurm_script.hpp), submitted chained with --dependency=afterok so a failed
// stage cancels its dependents (--kill-on-invalid-dep) while a requeued one keeps them waiting;
// re-submitting resumes, since every stage skips what is complete.
#pragma once
#include <nlohmann/json.hpp>
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

// runs/<name>/slurm/submitted.json: stage -> the SLURM job id it was last submitted as.
nlohmann::json read_submitted(const Job& job);

// One line per stage: its outputs' state in the run directory; when it was submitted, the SLURM
// job id and state and how often it was requeued; and what its runs resumed from
// (runs/<name>/stages.jsonl, pipeline/core/stage_record.hpp).
std::string run_status(const Job& job);

}  // namespace saepipe
