// Stop signals (pipeline/core/interrupt.hpp): the first raises a flag and nothing else, copies
// within the window are that same request, a later signal or the stop deadline ends the process
// at once with 75. Each case runs in a forked child (the handlers are process-wide), which
// reports a failed expectation through its exit code.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include "pipeline/core/interrupt.hpp"

using namespace saepipe;

namespace {

// Child exit codes for the checks below.
constexpr int kOk = 0, kWrongFlag = 10, kWrongAlarm = 11, kDidNotEnd = 12;

[[noreturn]] void first_signal_only_raises_the_flag() {
  ::unsetenv("SAEPIPE_SIGNAL_GRACE");
  install_interrupt_handlers();
  if (interrupt_signal() != 0) ::_exit(kWrongFlag);
  std::raise(SIGUSR1);
  if (interrupt_signal() != SIGUSR1) ::_exit(kWrongFlag);
  std::raise(SIGTERM);  // a copy (within the window): the same request
  std::raise(SIGUSR1);
  if (interrupt_signal() != SIGUSR1) ::_exit(kWrongFlag);
  if (::alarm(0) != 0) ::_exit(kWrongAlarm);  // no deadline without SAEPIPE_SIGNAL_GRACE
  ::_exit(kOk);
}

[[noreturn]] void second_signal_ends_at_once() {
  ::unsetenv("SAEPIPE_SIGNAL_GRACE");
  install_interrupt_handlers();
  std::raise(SIGTERM);
  ::usleep(useconds_t((kSignalCopyWindowS + 0.3) * 1e6));
  std::raise(SIGINT);
  ::_exit(kDidNotEnd);
}

[[noreturn]] void grace_sets_the_deadline() {
  ::setenv("SAEPIPE_SIGNAL_GRACE", "8", 1);
  install_interrupt_handlers();
  if (::alarm(0) != 0) ::_exit(kWrongAlarm);  // no clock before a signal
  std::raise(SIGUSR1);
  if (::alarm(0) != 6) ::_exit(kWrongAlarm);  // three quarters of the grace
  ::_exit(kOk);
}

[[noreturn]] void no_time_left_ends_at_once() {
  ::setenv("SAEPIPE_SIGNAL_GRACE", "1", 1);  // the deadline: 1 s after the first signal
  install_interrupt_handlers();
  std::raise(SIGUSR1);
  for (int i = 0; i < 50; ++i) ::usleep(100000);  // a stage that never reaches a safe point
  ::_exit(kDidNotEnd);
}

}  // namespace

TEST(Interrupt, FirstSignalOnlyRaisesTheFlag) {
  EXPECT_EXIT(first_signal_only_raises_the_flag(), ::testing::ExitedWithCode(kOk), "");
}

TEST(Interrupt, SecondSignalEndsAtOnceWithTheResumableCode) {
  EXPECT_EXIT(second_signal_ends_at_once(), ::testing::ExitedWithCode(kExitInterrupted), "a second signal: ending at once");
}

TEST(Interrupt, SignalGraceSetsTheStopDeadline) {
  EXPECT_EXIT(grace_sets_the_deadline(), ::testing::ExitedWithCode(kOk), "");
}

TEST(Interrupt, NoTimeLeftEndsAtOnce) {
  EXPECT_EXIT(no_time_left_ends_at_once(), ::testing::ExitedWithCode(kExitInterrupted), "no time left");
}

TEST(Interrupt, SignalNames) {
  EXPECT_EQ(signal_name(SIGUSR1), "SIGUSR1");
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
}
