// Stop signals across ranks (pipeline/core/interrupt.hpp): a signal to one rank is agreed on
// at the next safe point by every rank, each runs the checkpoint, and each throws Interrupted.
#include <gtest/gtest.h>

#include <csignal>

#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/mpi_env.hpp"

using namespace saepipe;

TEST(InterruptAgreement, OneRanksSignalStopsEveryRankAtTheSafePoint) {
  MpiEnv env;
  install_interrupt_handlers();
  int checkpoints = 0;
  auto safe_point = [&] {
    stop_if_interrupted(env, [&] {
      ++checkpoints;
      return "step 7";
    });
  };
  EXPECT_EQ(interrupt_agreed(env), 0);
  EXPECT_NO_THROW(safe_point());  // nobody asked: the stage goes on
  EXPECT_EQ(checkpoints, 0);
  if (env.rank() == env.size() - 1) std::raise(SIGUSR1);  // the last rank only
  EXPECT_EQ(interrupt_agreed(env), SIGUSR1);
  std::string message;
  try {
    safe_point();
  } catch (const Interrupted& e) {
    message = e.what();
  }
  EXPECT_EQ(checkpoints, 1);
  EXPECT_EQ(env.allreduce_sum(int64_t(checkpoints)), env.size());
  EXPECT_EQ(message, "stopped by SIGUSR1 at a safe point; kept step 7");
}
