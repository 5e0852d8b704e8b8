#include "pipeline/stages/slurm.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/stages/launcher.hpp"
#include "pipeline/stages/shell.hpp"
#include "pipeline/stages/slurm_script.hpp"

namespace saepipe {

namespace {

namespace fs = std::filesystem;

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

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

// 16 hex digits of FNV-1a: a stable name for a snapshot's content.
std::string content_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

}  // namespace

nlohmann::json read_submitted(const Job& job) {
  const std::string path = job.run_dir() + "/slurm/submitted.json";
  if (!path_exists(path)) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(path));
    if (j.is_object()) return j;
  } catch (const nlohmann::json::exception&) {
  }
  user_error(path + ": not a JSON object of stage -> SLURM job id (remove it to forget earlier submissions)");
}

int submit_job(const Job& job, const SubmitOptions& opt) {
  const std::vector<std::string> stages = selected_stages(opt.only);
  for (const auto& stage : stages) check_stage_resources(job, stage);
  const std::string slurm_dir = job.run_dir() + "/slurm";
  make_dirs(slurm_dir);
  write_resolved_job(job);
  // The stages read a snapshot of the resolved job, named by its content: editing the job file
  // (or submitting an edited one) cannot change a run in flight, requeued runs included.
  const std::string snapshot = absolute(slurm_dir + "/job-" + content_hash(job.resolved_toml) + ".toml");
  write_file_atomic(snapshot, job.resolved_toml);
  nlohmann::json submitted = read_submitted(job);
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

}  // namespace saepipe
