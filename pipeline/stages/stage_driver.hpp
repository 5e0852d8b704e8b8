// What every stage program does between loading the job and the stage's own work, written
// once (stage_main.hpp holds the CLI, MPI and the exit-code policy around it):
//   1. run.device decided for all ranks (backend.hpp: choose_device), the backend made, the
//      decision put into the resolved job (job.run.device) and the log;
//   2. the prologue: the stage opens and checks its inputs (every rank; an error on any rank is
//      reported once) and names its fingerprint — everything that determines its outputs —
//      to which the driver adds the device; the output directory is made, rank 0 locks it
//      for the stage's lifetime (output_lock.hpp: a second run into it is a user error) and
//      writes job.resolved.toml; when the outputs are already complete for this fingerprint the
//      stage is done ("complete; nothing to do");
//   3. the stage's work.
// A stage is a StageBody; run_harvest, run_train, ... (stages.hpp) are functions of
// (job, env, backend) that drive theirs.
#pragma once
#include <functional>
#include <string>

namespace saepipe {

class Backend;
class Logger;
class MpiEnv;
struct Job;

struct StageContext {
  const Job& job;
  const MpiEnv& env;
  const Backend& backend;
  Logger& log;
};

class StageBody {
 public:
  virtual ~StageBody() = default;
  // Every rank, inside all_or_none: opens and checks the inputs; returns the fingerprint of
  // everything that determines the outputs except the device.
  virtual std::string open_inputs() = 0;
  // The directory the outputs go to (made before complete() is asked).
  virtual std::string output_dir() const = 0;
  // Every rank, inside all_or_none: true when output_dir holds the complete outputs of this
  // fingerprint (a user error when it holds another job's). Stages that always run: false.
  virtual bool complete(const std::string& fingerprint) = 0;
  // The stage's work, on every rank.
  virtual void run(const std::string& fingerprint) = 0;
};

// The prologue and the work of `body` (steps 2 and 3 above).
void drive_stage(StageBody& body, const StageContext& ctx);

using DeviceStageFunction = std::function<void(const Job&, const MpiEnv&, const Backend&)>;

// Step 1 above, then `fn` with the backend and the job with run.device resolved.
void run_on_device(const Job& job, const MpiEnv& env, const std::string& stage, const DeviceStageFunction& fn);

// The function stage_main (pipeline/core/stage_main.hpp) runs for a stage program:
//   return stage_main(argc, argv, "train", with_backend("train", run_train));
std::function<void(const Job&, const MpiEnv&)> with_backend(const std::string& stage, DeviceStageFunction fn);

}  // namespace saepipe
