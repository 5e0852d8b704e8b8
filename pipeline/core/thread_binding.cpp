#include "pipeline/core/thread_binding.hpp"

#include <omp.h>
#include <sched.h>

#include <cstdio>

#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

int allowed_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}

void warn_if_threads_exceed_cores(const MpiEnv& env, const std::string& prog) {
  const int cores = allowed_cores(), threads = omp_get_max_threads();
  const int64_t crowded = env.allreduce_sum(int64_t(cores > 0 && threads > cores));
  if (crowded == 0 || !env.is_root()) return;
  std::fprintf(stderr,
               "%s: warning: %lld rank(s) run %d threads on %d core(s) (rank 0's affinity); mpirun binds each rank to "
               "a core by default: launch with `mpirun --bind-to none` or `--map-by slot:PE=%d` (saepipe run and "
               "the SLURM scripts do), or set OMP_NUM_THREADS\n",
               prog.c_str(), static_cast<long long>(crowded), threads, cores, threads);
  std::fflush(stderr);
}

}  // namespace saepipe
