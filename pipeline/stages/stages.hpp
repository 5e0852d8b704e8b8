// The four stages, each a library function of the resolved job (run.device decided), the MPI
// environment and the backend (backend.hpp). The mains in pipeline/apps/ call these through
// stage_main() and run_on_device() (stage_driver.hpp), which also runs each stage's prologue.
#pragma once

namespace saepipe {

class Backend;
class MpiEnv;
struct Job;

void run_harvest(const Job& job, const MpiEnv& env, const Backend& backend);
void run_train(const Job& job, const MpiEnv& env, const Backend& backend);
void run_stats(const Job& job, const MpiEnv& env, const Backend& backend);
void run_interpret(const Job& job, const MpiEnv& env, const Backend& backend);  // renders on the CPU

}  // namespace saepipe
