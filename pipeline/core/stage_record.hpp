// runs/<name>/stages.jsonl: one JSON line per event of a stage, appended by rank 0, so that
// `saepipe status` can tell how each stage ran — where and under which SLURM job and restart
// it started, what it resumed from, how it ended. Records go only into a run directory that
// exists (`saepipe run` and `saepipe submit` make it first; a stage that fails before writing
// anything leaves nothing), and a record that cannot be written (a full disk) is skipped
// without a word: records never change how a stage ends or what it says.
//
//   {"time": "2026-12-02T14:30:00Z", "stage": "train", "event": "start", "ranks": 2,
//    "hosts": ["n1", "n2"], "slurm_job": "13", "restart": 1}
//   {"time": ..., "stage": "train", "event": "resume", "from": "step 120 of 400"}
//   {"time": ..., "stage": "train", "event": "interrupted", "signal": "SIGUSR1", "kept": "..."}
//   {"time": ..., "stage": "train", "event": "end", "exit": 0}
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace saepipe {

class MpiEnv;
struct Job;

// The name of the host a rank runs on: SLURM's node name when SLURM started it (it can differ
// from the host name, as on a test cluster of several slurmd on one machine), else the host.
std::string rank_host(const MpiEnv& env);

// Rank 0 appends {"time", "stage", "event", ...fields} to the run's stages.jsonl.
void record_stage_event(const MpiEnv& env, const Job& job, const std::string& stage, const std::string& event,
                        nlohmann::json fields = nlohmann::json::object());

// The run's records, oldest first; lines that are not JSON objects are skipped.
std::vector<nlohmann::json> read_stage_events(const Job& job);

}  // namespace saepipe
