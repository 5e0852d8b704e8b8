#include "pipeline/stages/slurm_script.hpp"

#include <filesystem>
#include <regex>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/stages/launcher.hpp"
#include "pipeline/stages/shell.hpp"

namespace saepipe {

namespace fs = std::filesystem;

namespace {
constexpr int64_t kSlurmCheckIntervalS = 30;  // how often slurmctld looks at time limits
}  // namespace

std::optional<int64_t> slurm_time_seconds(const std::string& t) {
  std::string lower;
  for (char c : t) lower += char(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "infinite" || lower == "unlimited") return -1;
  std::smatch m;
  auto num = [&](int i) { return m[i].matched ? std::stoll(m[i].str()) : 0; };
  // Bounded digit counts: no overflow, and limits beyond SLURM's range are refused.
  static const std::regex days(R"(^(\d{1,5})-(\d{1,5})(?::(\d{1,5}))?(?::(\d{1,5}))?$)");
  static const std::regex clock(R"(^(\d{1,7})(?::(\d{1,5}))?(?::(\d{1,5}))?$)");
  if (std::regex_match(lower, m, days)) return ((num(1) * 24 + num(2)) * 60 + num(3)) * 60 + num(4);
  if (!std::regex_match(lower, m, clock)) return std::nullopt;
  if (m[3].matched) return (num(1) * 60 + num(2)) * 60 + num(3);  // hours:minutes:seconds
  return num(1) * 60 + num(2);                                    // minutes[:seconds]
}

void check_stage_resources(const Job& job, const std::string& stage) {
  const StageResources& r = job.resources(stage);
  auto fail = [&](const std::string& key, const std::string& what) {
    user_error(job.path + ": resources." + stage + "." + key + ": " + what);
  };
  const std::optional<int64_t> limit = slurm_time_seconds(r.time);
  if (!limit || *limit == 0)
    fail("time", "\"" + r.time + "\" is not a SLURM time limit (minutes, hours:minutes:seconds, days-hours:minutes, ...)");
  if (r.ranks < r.nodes)
    fail("ranks", std::to_string(r.ranks) + " rank(s) cannot fill " + std::to_string(r.nodes) + " nodes");
  if (r.gpus_per_node > 0 && r.ranks != r.nodes * r.gpus_per_node)
    fail("ranks", "must be " + std::to_string(r.nodes * r.gpus_per_node) + " (one rank per GPU: nodes " +
                      std::to_string(r.nodes) + " x gpus_per_node " + std::to_string(r.gpus_per_node) + "), got " +
                      std::to_string(r.ranks));
  // slurmctld looks every 30 s and warns at the first look with at most grace + 30 s left.
  if (*limit > 0 && r.signal_grace + kSlurmCheckIntervalS >= *limit)
    fail("signal_grace", "SLURM may warn up to " + std::to_string(kSlurmCheckIntervalS) + " s early, and " +
                             std::to_string(r.signal_grace) + " s + " + std::to_string(kSlurmCheckIntervalS) +
                             " s leaves no time to run within the time limit \"" + r.time + "\" (" +
                             std::to_string(*limit) + " s)");
}

std::string sbatch_script(const Job& job, const std::string& stage, const std::string& job_snapshot) {
  const StageResources& r = job.resources(stage);
  const std::string slurm_dir = fs::absolute(job.run_dir() + "/slurm").lexically_normal().string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# saepipe: stage " << stage << " of run " << job.run.name << ", written by `saepipe submit`.\n"
    << "#SBATCH --job-name=saepipe-" << job.run.name << "-" << stage << "\n"
    << "#SBATCH --nodes=" << r.nodes << "\n"
    << "#SBATCH --ntasks=" << r.ranks << "\n";
  if (r.ranks % r.nodes == 0) s << "#SBATCH --ntasks-per-node=" << r.ranks / r.nodes << "\n";
  s << "#SBATCH --cpus-per-task=" << r.cpus_per_task << "\n"
    << "#SBATCH --time=" << r.time << "\n"
    << "#SBATCH --output=" << slurm_dir << "/" << stage << "-%j.out\n"
    << "#SBATCH --open-mode=append\n"
    << "#SBATCH --kill-on-invalid-dep=yes\n"
    << "#SBATCH --requeue\n"
    << "#SBATCH --signal=B:USR1@" << r.signal_grace << "\n";
  if (r.gpus_per_node > 0) s << "#SBATCH --gpus-per-node=" << r.gpus_per_node << "\n";
  if (!r.partition.empty()) s << "#SBATCH --partition=" << r.partition << "\n";
  if (!r.account.empty()) s << "#SBATCH --account=" << r.account << "\n";
  s << "#\n"
    << "# SLURM's warning " << r.signal_grace << " s before the time limit (or `scancel --batch --signal=USR1`)\n"
    << "# reaches this script, which passes it on to the ranks: they save their progress at the next\n"
    << "# safe point and end with " << kExitInterrupted << "; this job then requeues itself (at most "
    << r.max_requeues << " restarts) and the\n"
    << "# next run resumes. The stages after this one wait until it succeeds.\n"
    << "set -uo pipefail\n"
    << "pid=\n"
    << "forwarded=0 stop=0\n"
    << "trap 'forwarded=1 stop=1; [ -n \"$pid\" ] && kill -USR1 \"$pid\" 2>/dev/null' USR1\n"
    << "cd " << shell_quote(fs::current_path().string()) << " || exit 2\n"
    << "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n"
    << "export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}\n"
    << "export SAEPIPE_SIGNAL_GRACE=" << r.signal_grace << "\n"
    << "JOB=" << shell_quote(job_snapshot) << "\n"
    << "PROG=" << shell_quote(program_dir() + "/saepipe-" + stage) << "\n"
    << "MAX_REQUEUES=" << r.max_requeues << "\n"
    << "RESTART=${SLURM_RESTART_COUNT:-0}\n"
    << "LAUNCH=${SAEPIPE_LAUNCH:-" << r.launcher << "}\n"
    << "if [ \"$LAUNCH\" = auto ]; then\n"
    << "  # srun starts MPI ranks itself only through a PMIx plugin; else mpirun in the allocation\n"
    << "  if srun --mpi=list 2>&1 | grep -qw pmix; then LAUNCH=srun; else LAUNCH=mpirun; fi\n"
    << "fi\n"
    << "echo \"saepipe: stage " << stage << ", SLURM job $SLURM_JOB_ID (restart $RESTART), $SLURM_NTASKS rank(s) on "
       "$SLURM_JOB_NODELIST, started with $LAUNCH\" >&2\n"
    << "if [ \"$stop\" = 1 ]; then\n"
    << "  # The warning came before the launch: nothing to save, so the job is requeued at once.\n"
    << "  rc=" << kExitInterrupted << "\n"
    << "else\n"
    << "  # In the background, so that a signal to this script can be passed on while it waits.\n"
    << "  if [ \"$LAUNCH\" = srun ]; then\n"
    << "    srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=" << r.cpus_per_task
    << " \"$PROG\" --job \"$JOB\" &\n"
    << "  else\n"
    << "    mpirun -q --bind-to none -np \"$SLURM_NTASKS\" \"$PROG\" --job \"$JOB\" &\n"
    << "  fi\n"
    << "  pid=$!\n"
    << "  # A warning between the check above and pid=$! found no pid to pass on to. The launcher may\n"
    << "  # not run yet (a signal between fork and exec is lost): pass it on a second later.\n"
    << "  [ \"$stop\" = 1 ] && sleep 1 && kill -USR1 \"$pid\" 2>/dev/null\n"
    << "  while :; do\n"
    << "    forwarded=0\n"
    << "    wait \"$pid\"; rc=$?\n"
    << "    # The trapped signal interrupts `wait` (status 128+n) while the launcher runs on: wait again.\n"
    << "    [ \"$forwarded\" = 1 ] && [ \"$rc\" -gt 128 ] && continue\n"
    << "    break\n"
    << "  done\n"
    << "fi\n"
    << "# A rank that got the signal before it could catch it (just started) ended by it: what the\n"
    << "# stage wrote is as resumable as after a checkpoint.\n"
    << "[ \"$stop\" = 1 ] && [ \"$rc\" -gt 128 ] && rc=" << kExitInterrupted << "\n"
    << "if [ \"$rc\" = " << kExitInterrupted << " ]; then\n"
    << "  if [ \"$RESTART\" -lt \"$MAX_REQUEUES\" ]; then\n"
    << "    echo \"saepipe: stage " << stage
    << " stopped after saving its progress; requeueing SLURM job $SLURM_JOB_ID (restart $((RESTART + 1)) of at most "
       "$MAX_REQUEUES)\" >&2\n"
    << "    scontrol requeue \"$SLURM_JOB_ID\" && exit \"$rc\"\n"
    << "    echo \"saepipe: scontrol requeue failed: submit the job again to resume\" >&2\n"
    << "  else\n"
    << "    echo \"saepipe: stage " << stage
    << " stopped after saving its progress, and max_requeues ($MAX_REQUEUES) is reached: submit the job again to "
       "resume\" >&2\n"
    << "  fi\n"
    << "fi\n"
    << "exit \"$rc\"\n";
  return s.str();
}

}  // namespace saepipe
