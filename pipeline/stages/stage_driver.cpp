// The shared part of the stage programs (stage_driver.hpp).
#include "pipeline/stages/stage_driver.hpp"

#include <optional>

#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/output_lock.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/stages/backend.hpp"
#include "pipeline/stages/resolve_bos.hpp"

namespace saepipe {

void drive_stage(StageBody& body, const StageContext& ctx) {
  const MpiEnv& env = ctx.env;
  h5::silence_errors();  // HDF5's own stack traces: our errors say what failed
  std::string fingerprint;
  bool done = false;
  std::optional<OutputLock> lock;  // rank 0's, held until the stage ends
  env.all_or_none([&] {
    // The same outputs from another device differ in their last bits: never mixed.
    fingerprint = body.open_inputs() + "\ndevice = " + ctx.backend.device() + "\n";
    make_dirs(body.output_dir());
    if (env.is_root()) lock.emplace(body.output_dir(), ctx.log.stage());
    if (env.is_root()) write_resolved_job(ctx.job);
    done = body.complete(fingerprint);
  });
  if (lock && !lock->supported())
    ctx.log.info(lock->path() + ": the file system has no flock; a second run into " + body.output_dir() +
                 " at the same time would not be detected");
  if (done) {
    ctx.log.info(body.output_dir() + " is complete; nothing to do");
    return;
  }
  body.run(fingerprint);
}

void run_on_device(const Job& job, const MpiEnv& env, const std::string& stage, const DeviceStageFunction& fn) {
  Logger log(env, stage);
  const std::string device = choose_device(job.run.device, job.path, env);
  std::unique_ptr<Backend> backend;
  env.all_or_none([&] { backend = make_backend(device, env); });
  Job resolved = job;
  set_resolved_device(resolved, device);
  log.info("run.device = \"" + job.run.device + "\": " + backend->describe() +
           (env.size() > 1 ? " on each of " + std::to_string(env.size()) + " ranks" : ""));
  std::string bos_reason;  // every stage writes job.resolved.toml: each resolves "auto" alike
  env.all_or_none([&] { bos_reason = resolve_prepend_bos(resolved, stage == "harvest"); });
  if (!bos_reason.empty())
    log.info(std::string("harvest.prepend_bos = \"auto\": ") + (*resolved.harvest.prepend_bos ? "true" : "false") +
             " (" + bos_reason + ")");
  fn(resolved, env, *backend);
}

std::function<void(const Job&, const MpiEnv&)> with_backend(const std::string& stage, DeviceStageFunction fn) {
  return [stage, fn = std::move(fn)](const Job& job, const MpiEnv& env) { run_on_device(job, env, stage, fn); };
}

}  // namespace saepipe
