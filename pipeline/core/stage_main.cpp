#include "pipeline/core/stage_main.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

namespace {
const char* kind_name(int code) {
  switch (code) {
    case 2: return "error";
    case 3: return "data corruption";
    default: return "internal error";
  }
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
  try {
    Job job = load_job(env, job_path, stage);
    run(job, env);
  } catch (const SaeError& e) {
    if (e.collective() || env.size() == 1) {
      if (env.is_root()) std::fprintf(stderr, "%s: %s: %s\n", prog.c_str(), kind_name(e.exit_code()), e.what());
      return e.exit_code();
    }
    std::fprintf(stderr, "%s: [rank %d@%s] %s:%d %s: %s\n", prog.c_str(), env.rank(), env.host().c_str(),
                 std::filesystem::path(e.file()).filename().c_str(), e.line(), kind_name(e.exit_code()), e.what());
    std::fflush(stderr);
    MPI_Abort(env.comm(), e.exit_code());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: [rank %d@%s] internal error: %s\n", prog.c_str(), env.rank(), env.host().c_str(),
                 e.what());
    std::fflush(stderr);
    MPI_Abort(env.comm(), 1);
    return 1;
  }
  return 0;
}

}  // namespace saepipe
