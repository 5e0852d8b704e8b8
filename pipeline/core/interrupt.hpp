// Signals that ask a stage to stop: SIGUSR1 (SLURM's warning before the time limit, passed on
// by the sbatch script; `scancel --signal=USR1`), SIGTERM (scancel, requeue, preemption, a
// node being drained) and SIGINT (Ctrl-C).
//
// The first signal only raises a flag. The stage looks at it at its safe points (a step, a
// round of shards, a batch), where every rank agrees on it with one small allreduce, writes
// what lets a re-run resume and ends with kExitInterrupted on every rank. Copies of a signal
// that arrive within kSignalCopyWindowS of the first count as that one (SLURM may deliver one
// request to a rank by several paths: directly and through srun or mpirun). A later signal,
// or the stop deadline, ends the process at once: every output is written under a temporary
// name and renamed when complete, so nothing incomplete is left under a final name, and a
// re-run resumes from the last checkpoint.
//
// The stop deadline: with SAEPIPE_SIGNAL_GRACE=<seconds> in the environment (the sbatch
// scripts export [resources.<stage>] signal_grace), a stage ends at the latest three quarters
// of the grace after the first signal, leaving its script time to requeue it before SLURM's
// time limit kills both.
#pragma once
#include <exception>
#include <functional>
#include <string>

namespace saepipe {

class MpiEnv;

// "Interrupted by a signal after a checkpoint; re-running resumes" (sysexits' EX_TEMPFAIL).
// The sbatch scripts requeue a stage that ends with it.
inline constexpr int kExitInterrupted = 75;
inline constexpr double kSignalCopyWindowS = 2.0;

// Installs the handlers (SA_RESTART: an interrupted read or write goes on). Reads
// SAEPIPE_SIGNAL_GRACE; a malformed value is ignored (no deadline).
void install_interrupt_handlers();

// The first signal this process received (SIGUSR1, SIGTERM, SIGINT), or 0.
int interrupt_signal();

// "SIGUSR1", "SIGTERM", "SIGINT" (or "signal N").
std::string signal_name(int signo);

// Collective: the first signal any rank received, or 0 (the same answer on every rank).
int interrupt_agreed(const MpiEnv& env);

// Thrown on every rank at a safe point after the checkpoint: the stage driver prints it once
// (rank 0) and every rank exits with kExitInterrupted.
class Interrupted : public std::exception {
 public:
  explicit Interrupted(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// At a safe point (collective): when any rank has been asked to stop, runs `checkpoint` on
// every rank (it may make collective calls, and returns what a re-run will resume from, e.g.
// "train_state.h5 at step 120 of 400") and throws Interrupted.
void stop_if_interrupted(const MpiEnv& env, const std::function<std::string()>& checkpoint);

}  // namespace saepipe
