// The one driver shared by the four stage programs: MPI set-up, `--job` parsing, job
// loading, and the exit-code policy of DESIGN.md (errors every rank sees: rank 0 prints one
// line, all exit with the code; errors one rank sees: that rank prints
// "[rank r@host] file:line message" and calls MPI_Abort).
#pragma once
#include <functional>
#include <string>

namespace saepipe {

class MpiEnv;
struct Job;

using StageFunction = std::function<void(const Job&, const MpiEnv&)>;

int stage_main(int argc, char** argv, const std::string& stage, const StageFunction& run);

}  // namespace saepipe
