#include "pipeline/stages/slurm.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/stages/launcher.hpp"

namespace saepipe {

namespace {

namespace fs = std::filesystem;

// Single-quoted for bash: safe for any path.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

// Runs a command through the shell and returns its stdout; exit code in *rc.
std::string capture(const std::string& command, int* rc) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) internal_error("cannot run: " + command);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string sbatch_program() {
  const char* s = std::getenv("SAEPIPE_SBATCH");
  return s && *s ? s : "sbatch";
}

std::vector<std::string> selected_stages(const std::vector<std::string>& only) {
  std::vector<std::string> out;
  for (const auto& s : only) {
    bool known = false;
    for (const auto& k : kStages) known = known || k == s;
    if (!known) user_error("--only: unknown stage \"" + s + "\" (stages: harvest, train, stats, interpret)");
  }
  for (const auto& stage : kStages) {
    bool selected = only.empty();
    for (const auto& s : only) selected = selected || s == stage;
    if (selected) out.push_back(stage);
  }
  return out;
}

}  // namespace

std::string sbatch_script(const Job& job, const std::string& stage, const std::string& job_snapshot) {
  const StageResources& r = job.resources(stage);
  const std::string slurm_dir = absolute(job.run_dir() + "/slurm");
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# saepipe: stage " << stage << " of run " << job.run.name << ", written by `saepipe submit`.\n"
    << "#SBATCH --job-name=saepipe-" << job.run.name << "-" << stage << "\n"
    << "#SBATCH --nodes=" << r.nodes << "\n"
    << "#SBATCH --ntasks=" << r.ranks << "\n"
    << "#SBATCH --cpus-per-task=" << r.cpus_per_task << "\n"
    << "#SBATCH --time=" << r.time << "\n"
    << "#SBATCH --output=" << slurm_dir << "/" << stage << "-%j.out\n"
    << "#SBATCH --kill-on-invalid-dep=yes\n";
  if (r.gpus_per_node > 0) s << "#SBATCH --gpus-per-node=" << r.gpus_per_node << "\n";
  if (!r.partition.empty()) s << "#SBATCH --partition=" << r.partition << "\n";
  if (!r.account.empty()) s << "#SBATCH --account=" << r.account << "\n";
  s << "set -uo pipefail\n"
    << "cd " << shell_quote(fs::current_path().string()) << " || exit 2\n"
    << "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n"
    << "JOB=" << shell_quote(job_snapshot) << "\n"
    << "PROG=" << shell_quote(program_dir() + "/saepipe-" + stage) << "\n"
    << "LAUNCH=${SAEPIPE_LAUNCH:-" << r.launcher << "}\n"
    << "if [ \"$LAUNCH\" = auto ]; then\n"
    << "  # srun starts MPI ranks itself only through a PMIx plugin; else mpirun in the allocation\n"
    << "  if srun --mpi=list 2>&1 | grep -qw pmix; then LAUNCH=srun; else LAUNCH=mpirun; fi\n"
    << "fi\n"
    << "if [ \"$LAUNCH\" = srun ]; then\n"
    << "  srun --mpi=pmix \"$PROG\" --job \"$JOB\"\n"
    << "else\n"
    << "  mpirun -q --bind-to none -np \"$SLURM_NTASKS\" \"$PROG\" --job \"$JOB\"\n"
    << "fi\n";
  return s.str();
}

int submit_job(const Job& job, const SubmitOptions& opt) {
  const std::vector<std::string> stages = selected_stages(opt.only);
  const std::string slurm_dir = job.run_dir() + "/slurm";
  make_dirs(slurm_dir);
  write_resolved_job(job);
  // The stages read a snapshot of the resolved job: editing the job file after submitting
  // cannot change a run in flight.
  const std::string snapshot = absolute(slurm_dir + "/job.toml");
  write_file_atomic(snapshot, job.resolved_toml);
  nlohmann::json submitted = nlohmann::json::object();
  std::string previous;
  for (const auto& stage : stages) {
    const std::string script = slurm_dir + "/" + stage + ".sbatch";
    write_file_atomic(script, sbatch_script(job, stage, snapshot));
    fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
    std::string cmd = sbatch_program() + " --parsable";
    if (!previous.empty()) cmd += " --dependency=afterok:" + previous;
    cmd += " " + shell_quote(absolute(script));
    if (opt.dry_run) {
      std::printf("# %s\n%s\n", cmd.c_str(), read_file(script).c_str());
      previous = "<" + stage + "-id>";
      continue;
    }
    int rc = 0;
    std::string out = capture(cmd + " 2>&1", &rc);
    if (rc != 0) {
      std::fprintf(stderr, "saepipe: sbatch failed for stage %s (exit %d): %s\n", stage.c_str(), rc, out.c_str());
      return rc == 2 ? 2 : 1;
    }
    previous = out.substr(0, out.find(';'));  // --parsable prints "id" or "id;cluster"
    submitted[stage] = previous;
    std::printf("submitted %s as SLURM job %s\n", stage.c_str(), previous.c_str());
  }
  if (!opt.dry_run) write_file_atomic(slurm_dir + "/submitted.json", submitted.dump(2) + "\n");
  return 0;
}

namespace {

std::string outputs_state(const Job& job, const std::string& stage) {
  const std::string run = job.run_dir();
  if (stage == "harvest") {
    const std::string dir = run + "/activations";
    if (path_exists(dir + "/manifest.json")) return "complete";
    int shards = 0;
    std::error_code ec;
    if (fs::is_directory(dir, ec))
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        shards += name.rfind("shard-", 0) == 0 && e.path().extension() == ".h5";
      }
    return shards ? "partial (" + std::to_string(shards) + " shard(s) written)" : "not started";
  }
  if (stage == "train") return path_exists(job.sae_dir() + "/sae.h5") ? "complete" : "not complete";
  if (stage == "stats") return path_exists(run + "/stats/summary.json") ? "complete" : "not complete";
  return path_exists(job.interpret_dir() + "/index.html") ? "complete" : "not complete";
}

// JobState of a SLURM job, or "" when SLURM cannot tell (no scontrol, job purged).
std::string slurm_state(const std::string& id) {
  int rc = 0;
  std::string out = capture("scontrol show job " + shell_quote(id) + " 2>/dev/null", &rc);
  auto pos = out.find("JobState=");
  if (rc != 0 || pos == std::string::npos) return "";
  pos += 9;
  return out.substr(pos, out.find_first_of(" \n", pos) - pos);
}

}  // namespace

std::string run_status(const Job& job) {
  nlohmann::json submitted;
  const std::string sub_path = job.run_dir() + "/slurm/submitted.json";
  if (path_exists(sub_path)) {
    try {
      submitted = nlohmann::json::parse(read_file(sub_path));
    } catch (const nlohmann::json::exception& e) {
      user_error(sub_path + ": not valid JSON: " + e.what());
    }
  }
  std::ostringstream o;
  o << "run " << job.run.name << " in " << job.run_dir() << "\n";
  for (const auto& stage : kStages) {
    char line[256];
    std::string slurm;
    if (submitted.is_object() && submitted.contains(stage)) {
      const std::string id = submitted[stage].get<std::string>();
      std::string st = slurm_state(id);
      slurm = "SLURM job " + id + (st.empty() ? "" : " " + st);
    }
    std::snprintf(line, sizeof line, "  %-10s %-32s %s\n", stage.c_str(), outputs_state(job, stage).c_str(),
                  slurm.c_str());
    o << line;
  }
  return o.str();
}

}  // namespace saepipe
