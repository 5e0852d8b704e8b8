// The sbatch scripts of `saepipe submit` (pipeline/stages/slurm_script.hpp): SLURM time limits,
// the checks of [resources.<stage>], and what the scripts ask of SLURM. What they do on a real
// SLURM is tested end to end (tests/e2e/test_slurm*.sh).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
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
