#include "pipeline/core/stage_main.hpp"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/mpi_env.hpp"
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

  MpiSession session(&argc, &argv);
  MpiEnv env;
  std::string prog = "saepipe-" + stage;
  warn_if_threads_exceed_cores(env, prog);
  try {
    Job job = load_job(env, job_path, stage);
    run(job, env);
  } catch (const SaeError& e) {
    if (e.collective() || env.size() == 1) {
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
