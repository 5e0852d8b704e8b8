// saepipe: the driver. `run` chains the stage programs, `validate` prints the resolved job,
// `inspect` summarises and checks an output file.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/inspect.hpp"
#include "pipeline/stages/launcher.hpp"

int main(int argc, char** argv) {
  using namespace saepipe;
  CLI::App app("saepipe: sparse-autoencoder training pipeline (harvest → train → stats → interpret)");
  app.require_subcommand(1);
  std::string job_path;
  LaunchOptions launch;
  std::string only;

  auto* run = app.add_subcommand("run", "run the job's stages in order on this machine");
  run->add_option("job", job_path, "job file (TOML); omitted or '-': the embedded quickstart");
  run->add_option("--only", only, "comma-separated stages to run (harvest,train,stats,interpret)");
  run->add_option("--ranks", launch.ranks, "MPI ranks per stage (default: [resources.<stage>].ranks)")
      ->check(CLI::Range(1, 1 << 20));
  run->add_option("--launcher", launch.launcher, "MPI launcher (default $SAEPIPE_MPIRUN or mpirun)");

  auto* validate = app.add_subcommand("validate", "check a job file and print the resolved job");
  validate->add_option("job", job_path, "job file (TOML); '-': the embedded quickstart")->required();

  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "summarise and check a store, checkpoint or stats output");
  inspect->add_option("path", inspect_path, "store directory, manifest.json, sae.h5, stats dir or features.h5")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  try {
    if (*run) {
      for (size_t a = 0; a < only.size();) {
        size_t b = only.find(',', a);
        if (b == std::string::npos) b = only.size();
        if (b > a) launch.only.push_back(only.substr(a, b - a));
        a = b + 1;
      }
      Job job = launch.only.empty() ? load_job_serial(job_path) : load_job_serial(job_path, launch.only);
      return run_stages(job, job_path, launch);
    }
    if (*validate) {
      Job job = load_job_serial(job_path);
      std::fputs(job.resolved_toml.c_str(), stdout);
      return 0;
    }
    if (*inspect) {
      h5::silence_errors();
      std::fputs(inspect_output(inspect_path).c_str(), stdout);
      return 0;
    }
  } catch (const SaeError& e) {
    std::fprintf(stderr, "saepipe: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "saepipe: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
