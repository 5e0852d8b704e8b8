// The sbatch script of one stage, from [resources.<stage>]:
// - ranks: srun --mpi=pmix when the cluster offers PMIx, else mpirun inside the allocation
//   (launcher / SAEPIPE_LAUNCH force one); over `nodes` nodes, one rank per GPU with
//   gpus_per_node.
// - the warning before the time limit: --signal=B:USR1@<signal_grace> reaches the script,
//   which passes it on to the ranks (they checkpoint at their next safe point and end with 75,
//   pipeline/core/interrupt.hpp); SAEPIPE_SIGNAL_GRACE tells them how long they have.
// - requeue: a stage that ends with 75 puts its own job back in the queue (scontrol requeue)
//   while SLURM_RESTART_COUNT < max_requeues; the stages after it wait (afterok holds while it
//   is pending again). --requeue lets SLURM requeue it after a node failure; the log is
//   appended to, one per job id.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace saepipe {

struct Job;

// Seconds of a SLURM time limit: "minutes", "minutes:seconds", "hours:minutes:seconds",
// "days-hours", "days-hours:minutes", "days-hours:minutes:seconds"; -1 for "infinite" or
// "unlimited"; nullopt when malformed.
std::optional<int64_t> slurm_time_seconds(const std::string& t);

// User error (exit 2) naming the key when [resources.<stage>] cannot make a valid job: a
// malformed time, fewer ranks than nodes, ranks that are not one per GPU, a signal_grace that
// with SLURM's 30 s between looks at time limits is not shorter than the time limit.
void check_stage_resources(const Job& job, const std::string& stage);

std::string sbatch_script(const Job& job, const std::string& stage, const std::string& job_snapshot);

}  // namespace saepipe
