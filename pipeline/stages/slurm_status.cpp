// `saepipe status`: what the run directory, SLURM and the stages' own records
// (runs/<name>/stages.jsonl) say about each stage.
#include <filesystem>
#include <sstream>

#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/stage_record.hpp"
#include "pipeline/stages/launcher.hpp"
#include "pipeline/stages/shell.hpp"
#include "pipeline/stages/slurm.hpp"

namespace saepipe {

namespace {

namespace fs = std::filesystem;

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

// What `scontrol show job` says: JobState and Restarts ("" / -1 when SLURM no longer knows the job).
struct SlurmJobInfo {
  std::string state;
  int restarts = -1;
};

SlurmJobInfo slurm_job_info(const std::string& id) {
  int rc = 0;
  const std::string out = capture("scontrol show job " + shell_quote(id) + " 2>/dev/null", &rc);
  SlurmJobInfo info;
  if (rc != 0) return info;
  auto field = [&](const std::string& key) -> std::string {
    const auto pos = out.find(" " + key + "=");
    if (pos == std::string::npos) return "";
    const auto from = pos + key.size() + 2;
    return out.substr(from, out.find_first_of(" \n", from) - from);
  };
  info.state = field("JobState");
  const std::string restarts = field("Restarts");
  if (!restarts.empty() && restarts.find_first_not_of("0123456789") == std::string::npos)
    info.restarts = std::stoi(restarts);
  return info;
}

// The runs of one stage in the records: those of SLURM job `slurm_job`, or (no job) the last one.
struct StageRuns {
  int max_restart = 0;
  std::vector<std::string> resumed_from;
  std::string last_end;  // "interrupted: ..." or "exit N" of the last run, if it recorded one
};

StageRuns stage_runs(const std::vector<nlohmann::json>& events, const std::string& stage, const std::string& slurm_job) {
  StageRuns runs;
  bool in_run = false;  // the events since the last start belong to a selected run
  for (const auto& e : events) {
    if (e.value("stage", "") != stage) continue;
    const std::string ev = e.value("event", "");
    if (ev == "start") {
      in_run = slurm_job.empty() || e.value("slurm_job", "") == slurm_job;
      if (slurm_job.empty()) runs = StageRuns{};  // only the last run counts
      if (in_run) runs.max_restart = std::max(runs.max_restart, e.value("restart", 0));
      if (in_run) runs.last_end.clear();
    } else if (in_run && ev == "resume") {
      runs.resumed_from.push_back(e.value("from", "?"));
    } else if (in_run && ev == "interrupted") {
      runs.last_end = "interrupted (" + e.value("message", "") + ")";
    } else if (in_run && ev == "end") {
      runs.last_end = "exit " + std::to_string(e.value("exit", -1));
    }
  }
  return runs;
}

}  // namespace

std::string run_status(const Job& job) {
  const nlohmann::json submitted = read_submitted(job);
  const std::vector<nlohmann::json> events = read_stage_events(job);
  std::ostringstream o;
  o << "run " << job.run.name << " in " << job.run_dir() << "\n";
  for (const auto& stage : kStages) {
    std::string slurm, history;
    std::string id;
    if (submitted.contains(stage) && submitted[stage].is_string()) id = submitted[stage].get<std::string>();
    const StageRuns runs = stage_runs(events, stage, id);
    if (!id.empty()) {
      const SlurmJobInfo info = slurm_job_info(id);
      slurm = "SLURM job " + id + (info.state.empty() ? "" : " " + info.state);
      const int requeues = std::max(info.restarts, runs.max_restart);
      if (requeues > 0) history += "; requeued " + std::to_string(requeues) + "x";
    } else if (!runs.last_end.empty()) {
      history += "; last run: " + runs.last_end;
    }
    for (size_t i = 0; i < runs.resumed_from.size(); ++i)
      history += (i == 0 ? "; resumed from " : ", ") + runs.resumed_from[i];
    char line[256];
    std::snprintf(line, sizeof line, "  %-10s %-32s ", stage.c_str(), outputs_state(job, stage).c_str());
    std::string text = line + slurm + history;
    while (!text.empty() && text.back() == ' ') text.pop_back();
    o << text << "\n";
  }
  return o.str();
}

}  // namespace saepipe
