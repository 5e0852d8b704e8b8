#include "pipeline/core/stage_main.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/stage_record.hpp"
#include "pipeline/core/thread_binding.hpp"

namespace saepipe {

namespace {
const char* kind_name(int code) {
  switch (code) {
    case 2: return "error";
    case 3: return "data corruption";
    default: return "system error";
  }
}

// The exit code already reported, for the guard below (a signal handler can only reach a
// static; it is written once, on the error path).
volatile std::sig_atomic_t g_reported_exit_code = 1;
extern "C" void exit_with_reported_code(int) { std::_Exit(g_reported_exit_code); }

// After a failed close (disk full), parallel HDF5's clean-up at MPI_Finalize can crash on the
// half-closed file (HDF5 1.10). The error has been reported by then, so a crash during the
// shutdown ends the process with the reported code instead of a segfault.
void guard_shutdown(int code) {
  g_reported_exit_code = code;
  std::signal(SIGSEGV, exit_with_reported_code);
  std::signal(SIGBUS, exit_with_reported_code);
}

// Errors are one line whatever a library put in its message (HDF5's carry newlines).
std::string one_line(const char* text) {
  std::string s(text);
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Every rank's host, in rank order (SLURM's node names when SLURM started the ranks).
std::vector<std::string> gather_hosts(const MpiEnv& env) {
  char mine[MPI_MAX_PROCESSOR_NAME] = {};
  const std::string host = rank_host(env);
  std::snprintf(mine, sizeof mine, "%s", host.c_str());
  const std::vector<char> all = env.allgather_bytes(mine, sizeof mine);
  std::vector<std::string> hosts;
  for (int r = 0; r < env.size(); ++r) hosts.emplace_back(all.data() + size_t(r) * sizeof mine);
  return hosts;
}

// Where this stage runs: each rank's host in the log (several nodes, SLURM), and a record of
// the start for `saepipe status`.
void record_start(const MpiEnv& env, const Job& job, const std::string& stage) {
  const std::vector<std::string> hosts = gather_hosts(env);
  const char* slurm_job = std::getenv("SLURM_JOB_ID");
  if (env.size() > 1 || slurm_job) {
    Logger log(env, stage);
    log.rank_info("on host " + hosts[size_t(env.rank())] + " (of " + std::to_string(env.size()) +
                  " ranks; local rank " + std::to_string(env.local_rank()) + ", pid " + std::to_string(::getpid()) +
                  ")");
  }
  nlohmann::json start = {{"ranks", env.size()}, {"hosts", hosts}};
  if (slurm_job && *slurm_job) {
    start["slurm_job"] = slurm_job;
    const char* restart = std::getenv("SLURM_RESTART_COUNT");
    start["restart"] = restart && *restart ? std::atoi(restart) : 0;
  }
  record_stage_event(env, job, stage, "start", start);
}
}  // namespace

int stage_main(int argc, char** argv, const std::string& stage, const StageFunction& run) {
  CLI::App app("saepipe-" + stage + ": the " + stage + " stage of saepipe (run under mpirun)");
  std::string job_path;
  app.add_option("--job", job_path, "job file (TOML); '-' for the embedded quickstart")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  // Before MPI starts, so that a signal is never fatal once the stage can reach a safe point.
  install_interrupt_handlers();
  MpiSession session(&argc, &argv);
  MpiEnv env;
  std::string prog = "saepipe-" + stage;
  warn_if_threads_exceed_cores(env, prog);
  Job job;
  bool loaded = false;
  try {
    job = load_job(env, job_path, stage);
    loaded = true;
    record_start(env, job, stage);
    run(job, env);
    record_stage_event(env, job, stage, "end", {{"exit", 0}});
  } catch (const Interrupted& e) {
    // Thrown on every rank together, after the checkpoint.
    record_stage_event(env, job, stage, "interrupted", {{"exit", kExitInterrupted}, {"message", e.what()}});
    if (env.is_root())
      std::fprintf(stderr, "%s: interrupted: %s; running the stage again resumes (exit %d)\n", prog.c_str(), e.what(),
                   kExitInterrupted);
    std::fflush(stderr);
    return kExitInterrupted;
  } catch (const SaeError& e) {
    if (e.collective() || env.size() == 1) {
      if (loaded) record_stage_event(env, job, stage, "end", {{"exit", e.exit_code()}, {"error", one_line(e.what())}});
      if (env.is_root())
        std::fprintf(stderr, "%s: %s: %s\n", prog.c_str(), kind_name(e.exit_code()), one_line(e.what()).c_str());
      std::fflush(stderr);
      guard_shutdown(e.exit_code());
      return e.exit_code();
    }
    std::fprintf(stderr, "%s: [rank %d@%s] %s:%d %s: %s\n", prog.c_str(), env.rank(), env.host().c_str(),
                 std::filesystem::path(e.file()).filename().c_str(), e.line(), kind_name(e.exit_code()),
                 one_line(e.what()).c_str());
    std::fflush(stderr);
    MPI_Abort(env.comm(), e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: [rank %d@%s] internal error: %s\n", prog.c_str(), env.rank(), env.host().c_str(),
                 one_line(e.what()).c_str());
    std::fflush(stderr);
    MPI_Abort(env.comm(), 1);
    return 1;
  }
  return 0;
}

}  // namespace saepipe
