// saepipe: the driver. `run` chains the stage programs, `validate` prints the resolved job,
// `inspect` summarises and checks an output file, `submit` chains the stages on SLURM,
// `status` shows how far a run got.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/inspect.hpp"
#include "pipeline/stages/launcher.hpp"
#include "pipeline/stages/resolve_bos.hpp"
#include "pipeline/stages/slurm.hpp"

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

  SubmitOptions submit_opt;
  std::string submit_only;
  auto* submit = app.add_subcommand("submit", "write one sbatch script per stage and submit them chained");
  submit->add_option("job", job_path, "job file (TOML); omitted or '-': the embedded quickstart");
  submit->add_option("--only", submit_only, "comma-separated stages to submit");
  submit->add_flag("--dry-run", submit_opt.dry_run, "write and print the scripts, submit nothing");

  auto* status = app.add_subcommand("status", "show each stage's state from the run directory (and SLURM)");
  status->add_option("job", job_path, "job file (TOML); omitted or '-': the embedded quickstart");

  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "summarise and check a store, checkpoint, stats output or GGUF model");
  inspect->add_option("path", inspect_path, "store directory, manifest.json, sae.h5, stats dir, features.h5 or a .gguf model")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  auto split_list = [](const std::string& text) {
    std::vector<std::string> out;
    for (size_t a = 0; a < text.size();) {
      size_t b = text.find(',', a);
      if (b == std::string::npos) b = text.size();
      if (b > a) out.push_back(text.substr(a, b - a));
      a = b + 1;
    }
    return out;
  };
  try {
    if (*submit) {
      submit_opt.only = split_list(submit_only);
      Job job = submit_opt.only.empty() ? load_job_serial(job_path) : load_job_serial(job_path, submit_opt.only);
      resolve_prepend_bos(job, false);
      return submit_job(job, submit_opt);
    }
    if (*status) {
      std::fputs(run_status(load_job_serial(job_path, {})).c_str(), stdout);
      return 0;
    }
    if (*run) {
      launch.only = split_list(only);
      Job job = launch.only.empty() ? load_job_serial(job_path) : load_job_serial(job_path, launch.only);
      resolve_prepend_bos(job, false);
      return run_stages(job, job_path, launch);
    }
    if (*validate) {
      Job job = load_job_serial(job_path);
      resolve_prepend_bos(job, false);
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
