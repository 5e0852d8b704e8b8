// The sbatch scripts of `saepipe submit` (pipeline/stages/slurm_script.hpp): SLURM time limits,
// the checks of [resources.<stage>], and what the scripts ask of SLURM. What they do on a real
// SLURM is tested end to end (tests/e2e/test_slurm*.sh).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <sys/wait.h>
#include <unistd.h>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/stages/slurm_script.hpp"

using namespace saepipe;

namespace {

std::string resource_error(const std::string& resources) {
  Job job = parse_job("[run]\nname = \"s\"\n[resources.train]\n" + resources, "job.toml");
  try {
    check_stage_resources(job, "train");
  } catch (const SaeError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::User) << e.what();
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(SlurmScript, TimeLimits) {
  EXPECT_EQ(slurm_time_seconds("30"), 1800);
  EXPECT_EQ(slurm_time_seconds("30:15"), 1815);
  EXPECT_EQ(slurm_time_seconds("1:00:00"), 3600);
  EXPECT_EQ(slurm_time_seconds("01:02:03"), 3723);
  EXPECT_EQ(slurm_time_seconds("2-12"), (2 * 24 + 12) * 3600);
  EXPECT_EQ(slurm_time_seconds("2-12:30"), (2 * 24 + 12) * 3600 + 30 * 60);
  EXPECT_EQ(slurm_time_seconds("2-12:30:15"), (2 * 24 + 12) * 3600 + 30 * 60 + 15);
  EXPECT_EQ(slurm_time_seconds("UNLIMITED"), -1);
  EXPECT_EQ(slurm_time_seconds("infinite"), -1);
  for (const char* bad : {"", "1:2:3:4", "a", "-5", "1-", "1:", "12345678", "1.5"})
    EXPECT_FALSE(slurm_time_seconds(bad).has_value()) << bad;
}

TEST(SlurmScript, ResourceChecksNameTheKey) {
  EXPECT_EQ(resource_error("ranks = 4\nnodes = 2\n"), "");
  EXPECT_TRUE(has(resource_error("time = \"soon\"\n"), "job.toml: resources.train.time: \"soon\" is not a SLURM time"));
  EXPECT_TRUE(has(resource_error("ranks = 1\nnodes = 2\n"), "resources.train.ranks: 1 rank(s) cannot fill 2 nodes"));
  EXPECT_TRUE(has(resource_error("ranks = 4\nnodes = 2\ngpus_per_node = 4\n"),
                  "resources.train.ranks: must be 8 (one rank per GPU: nodes 2 x gpus_per_node 4), got 4"));
  EXPECT_EQ(resource_error("ranks = 8\nnodes = 2\ngpus_per_node = 4\n"), "");
  EXPECT_TRUE(has(resource_error("time = \"1\"\nsignal_grace = 30\n"),
                  "resources.train.signal_grace: SLURM may warn up to 30 s early, and 30 s + 30 s leaves no time to "
                  "run within the time limit \"1\" (60 s)"));
  EXPECT_EQ(resource_error("time = \"1\"\nsignal_grace = 29\n"), "");
  EXPECT_EQ(resource_error("time = \"unlimited\"\nsignal_grace = 600\n"), "");
}

TEST(SlurmScript, AsksForTheWarningRequeueAndOneRankPerGpu) {
  Job job = parse_job("[run]\nname = \"s\"\n[resources.train]\nranks = 8\nnodes = 2\ngpus_per_node = 4\n"
                      "signal_grace = 90\nmax_requeues = 5\ntime = \"2:00:00\"\n",
                      "job.toml");
  const std::string s = sbatch_script(job, "train", "/abs/job.toml");
  for (const char* line : {"#SBATCH --nodes=2\n", "#SBATCH --ntasks=8\n", "#SBATCH --ntasks-per-node=4\n",
                           "#SBATCH --gpus-per-node=4\n", "#SBATCH --time=2:00:00\n", "#SBATCH --requeue\n",
                           "#SBATCH --open-mode=append\n", "#SBATCH --signal=B:USR1@90\n",
                           "#SBATCH --kill-on-invalid-dep=yes\n", "export SAEPIPE_SIGNAL_GRACE=90\n",
                           "MAX_REQUEUES=5\n", "JOB='/abs/job.toml'\n", "scontrol requeue \"$SLURM_JOB_ID\""})
    EXPECT_TRUE(has(s, line)) << line << "\n" << s;
  // The script is valid bash.
  const std::string path = std::filesystem::temp_directory_path() / ("saepipe-test-" + std::to_string(::getpid()) + ".sbatch");
  write_file_atomic(path, s);
  EXPECT_EQ(std::system(("bash -n " + path).c_str()), 0);
  std::filesystem::remove(path);
}

// SLURM's warning can come while the script is still choosing its launcher, before the launcher
// has a pid for the trap to pass the signal on to. Fake srun/mpirun/scontrol on PATH make that
// moment certain: `srun --mpi=list` sends USR1 to the script; the fake mpirun runs for 20 s
// unless it gets USR1. The script must still stop the stage and requeue the job.
TEST(SlurmScript, WarningBeforeTheLaunchIsPassedOn) {
  namespace fs = std::filesystem;
  Job job = parse_job("[run]\nname = \"s\"\n[resources.train]\nranks = 1\nmax_requeues = 2\n", "job.toml");
  const fs::path dir = fs::temp_directory_path() / ("saepipe-early-usr1-" + std::to_string(::getpid()));
  fs::create_directories(dir / "bin");
  write_file_atomic((dir / "job.sbatch").string(), sbatch_script(job, "train", (dir / "job.toml").string()));
  auto tool = [&](const std::string& name, const std::string& body) {
    const fs::path p = dir / "bin" / name;
    write_file_atomic(p.string(), "#!/bin/bash\n" + body);
    fs::permissions(p, fs::perms::owner_all);
  };
  tool("srun", "kill -USR1 $PPID; sleep 1\n");  // the warning, while the script asks srun for PMIx
  tool("mpirun", "trap 'exit 75' USR1\nfor i in $(seq 200); do sleep 0.1; done\necho ran-to-the-end > \"" +
                     (dir / "mpirun.out").string() + "\"\n");
  tool("scontrol", "echo \"$@\" > \"" + (dir / "requeued").string() + "\"\n");
  const std::string cmd = "cd '" + dir.string() + "' && env PATH='" + (dir / "bin").string() +
                          "':\"$PATH\" SLURM_JOB_ID=7 SLURM_NTASKS=1 SLURM_JOB_NODELIST=n1 SAEPIPE_LAUNCH=auto "
                          "bash job.sbatch 2>/dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitInterrupted);
  EXPECT_FALSE(fs::exists(dir / "mpirun.out")) << "the stage ran to its end: the warning was lost";
  EXPECT_EQ(read_file((dir / "requeued").string()), "requeue 7\n");
  fs::remove_all(dir);
}
