// run.device: the rule that picks the device, its agreement on this process, and the resolved
// job that records it (pipeline/stages/backend.hpp, pipeline/core/job.hpp).
#include <gtest/gtest.h>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/stages/backend.hpp"

using namespace saepipe;

TEST(Device, Rule) {
  // cpu is cpu whatever the machine has.
  EXPECT_EQ(decide_device("cpu", true, 8), "cpu");
  EXPECT_EQ(decide_device("cpu", false, 0), "cpu");
  // auto: cuda only when the build has it and every rank sees a GPU.
  EXPECT_EQ(decide_device("auto", true, 1), "cuda");
  EXPECT_EQ(decide_device("auto", true, 0), "cpu");
  EXPECT_EQ(decide_device("auto", false, 4), "cpu");
  // cuda: "" when it cannot be had (the caller names the reason).
  EXPECT_EQ(decide_device("cuda", true, 2), "cuda");
  EXPECT_EQ(decide_device("cuda", true, 0), "");
  EXPECT_EQ(decide_device("cuda", false, 2), "");
}

// On this process: auto follows what CUDA reports; cuda without a usable GPU is one user error
// naming run.device and the reason.
TEST(Device, ChosenOnThisProcess) {
  MpiEnv env;
  const CudaStatus s = cuda_status();
  EXPECT_EQ(choose_device("cpu", "job.toml", env), "cpu");
  EXPECT_EQ(choose_device("auto", "job.toml", env), s.built && s.devices > 0 ? "cuda" : "cpu");
  if (s.built && s.devices > 0) {
    EXPECT_EQ(choose_device("cuda", "job.toml", env), "cuda");
    return;
  }
  try {
    choose_device("cuda", "job.toml", env);
    FAIL() << "run.device = cuda accepted without a usable GPU";
  } catch (const SaeError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.rfind("job.toml: run.device = \"cuda\": ", 0), 0u) << m;
    const std::string why = s.built ? "no GPU is visible to rank 0" : "built without CUDA";
    EXPECT_NE(m.find(why), std::string::npos) << m;
  }
}

TEST(Device, RecordedInTheResolvedJob) {
  Job job = parse_job("[run]\nname = \"t\"\n", "job.toml");
  EXPECT_EQ(job.run.device, "auto");
  set_resolved_device(job, "cpu");
  EXPECT_EQ(job.run.device, "cpu");
  EXPECT_NE(job.resolved_toml.find("device = 'cpu'"), std::string::npos) << job.resolved_toml;
  EXPECT_NE(job.section_toml.at("run").find("device = 'cpu'"), std::string::npos);
  // The resolved text is still a job that resolves to itself, with the device kept.
  const Job again = parse_job(job.resolved_toml, "job.resolved.toml");
  EXPECT_EQ(again.run.device, "cpu");
  EXPECT_EQ(again.resolved_toml, job.resolved_toml);
  EXPECT_EQ(again.section_toml.at("train"), job.section_toml.at("train"));
}

TEST(Device, CpuBackend) {
  MpiEnv env;
  const auto b = make_backend("cpu", env);
  EXPECT_EQ(b->device(), "cpu");
  EXPECT_FALSE(b->describe().empty());
}
