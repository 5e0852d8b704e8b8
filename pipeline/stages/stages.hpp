// The four stages, each a library function taking the resolved job and the MPI
// environment. The mains in pipeline/apps/ only call these through stage_main().
#pragma once

namespace saepipe {

class MpiEnv;
struct Job;

void run_harvest(const Job& job, const MpiEnv& env);
void run_train(const Job& job, const MpiEnv& env);
void run_stats(const Job& job, const MpiEnv& env);
void run_interpret(const Job& job, const MpiEnv& env);

}  // namespace saepipe
