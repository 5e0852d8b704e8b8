#include "pipeline/core/interrupt.hpp"

#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

namespace {

// Written by the handlers, so lock-free atomics only (async-signal-safe).
std::atomic<int> g_signal{0};
std::atomic<int64_t> g_first_ns{0};       // when the first signal came (CLOCK_MONOTONIC)
std::atomic<unsigned> g_stop_within_s{0};  // the stop deadline after the first signal; 0: none
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free);

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void write_stderr(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

extern "C" void on_stop_signal(int signo) {
  const int64_t now = std::max<int64_t>(1, monotonic_ns());
  int64_t none = 0;
  if (g_first_ns.compare_exchange_strong(none, now)) {  // the first: raise the flag, start the clock
    g_signal.store(signo);
    if (unsigned s = g_stop_within_s.load()) ::alarm(s);
    return;
  }
  if (double(now - g_first_ns.load()) < kSignalCopyWindowS * 1e9) return;  // a copy of the first
  write_stderr("saepipe: a second signal: ending at once (outputs under their final names are complete; "
               "a re-run resumes from the last checkpoint)\n");
  ::_exit(kExitInterrupted);
}

extern "C" void on_stop_deadline(int) {
  write_stderr("saepipe: no time left after the stop signal: ending at once (outputs under their final names "
               "are complete; a re-run resumes from the last checkpoint)\n");
  ::_exit(kExitInterrupted);
}

void install(int signo, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and writes interrupted by the signal go on
  if (::sigaction(signo, &sa, nullptr) != 0) internal_error("sigaction failed for " + signal_name(signo));
}

}  // namespace

void install_interrupt_handlers() {
  if (const char* grace = std::getenv("SAEPIPE_SIGNAL_GRACE"); grace && *grace) {
    char* end = nullptr;
    const long s = std::strtol(grace, &end, 10);
    if (*end == '\0' && s > 0 && s <= 86400) g_stop_within_s.store(unsigned(std::max<long>(1, s * 3 / 4)));
  }
  if (g_stop_within_s.load()) install(SIGALRM, on_stop_deadline);
  for (int signo : {SIGUSR1, SIGTERM, SIGINT}) install(signo, on_stop_signal);
}

int interrupt_signal() { return g_signal.load(); }

std::string signal_name(int signo) {
  switch (signo) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "signal " + std::to_string(signo);
  }
}

int interrupt_agreed(const MpiEnv& env) {
  int signo = interrupt_signal();
  SAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &signo, 1, MPI_INT, MPI_MAX, env.comm()));
  return signo;
}

void stop_if_interrupted(const MpiEnv& env, const std::function<std::string()>& checkpoint) {
  const int signo = interrupt_agreed(env);
  if (signo == 0) return;
  const std::string kept = checkpoint ? checkpoint() : "nothing new";
  throw Interrupted("stopped by " + signal_name(signo) + " at a safe point; kept " + kept);
}

}  // namespace saepipe
