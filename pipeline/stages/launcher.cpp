#include "pipeline/stages/launcher.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <ctime>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"

extern char** environ;

namespace saepipe {

const std::vector<std::string> kStages = {"harvest", "train", "stats", "interpret"};

// The stage programs live next to the running `saepipe` binary.
std::string program_dir() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) internal_error("cannot locate the saepipe binary: " + ec.message());
  return self.parent_path().string();
}

namespace {

// The running stage (its launcher's pid), for the handlers below; 0 when none runs.
std::atomic<pid_t> g_stage_pid{0};
std::atomic<int64_t> g_first_signal_ns{0};

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::atomic<bool> g_forwarded{false};  // the stop request has reached the running stage

// The stage runs in its own process group, so Ctrl-C (or a signal to this driver) reaches it
// only through here: the first signal goes on as SIGUSR1 (mpirun and srun forward it to every
// rank, which checkpoint and stop), a later one as SIGTERM (the ranks end at once); no later
// stage starts. kill() is async-signal-safe.
extern "C" void forward_to_stage(int) {
  const int64_t now = std::max<int64_t>(1, monotonic_ns());
  const pid_t pid = g_stage_pid.load();
  int64_t none = 0;
  if (g_first_signal_ns.compare_exchange_strong(none, now)) {
    if (pid > 0 && !g_forwarded.exchange(true)) ::kill(pid, SIGUSR1);
  } else if (pid > 0 && double(now - g_first_signal_ns.load()) >= kSignalCopyWindowS * 1e9) {
    ::kill(pid, SIGTERM);
  }
}

bool stop_requested() { return g_first_signal_ns.load() != 0; }

void forward_signals_to_stage() {
  struct sigaction sa {};
  sa.sa_handler = forward_to_stage;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int signo : {SIGINT, SIGTERM, SIGUSR1, SIGHUP})
    if (::sigaction(signo, &sa, nullptr) != 0) internal_error("sigaction failed");
}

int spawn_and_wait(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  for (const auto& e : extra_env) env_store.push_back(e);
  std::vector<char*> envp, args;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);
  // Own process group (see forward_to_stage); stdin from /dev/null, since a launcher in a
  // background group that read the terminal would be stopped.
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t files;
  if (posix_spawnattr_init(&attr) != 0 || posix_spawn_file_actions_init(&files) != 0)
    internal_error("posix_spawn set-up failed");
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &files, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) user_error(argv[0] + ": cannot start: " + std::string(std::strerror(rc)));
  g_stage_pid.store(pid);
  if (stop_requested() && !g_forwarded.exchange(true)) ::kill(pid, SIGUSR1);  // asked while it started
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) internal_error("waitpid failed");
  }
  g_stage_pid.store(0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (stop_requested()) return 128 + WTERMSIG(status);  // told apart by the caller
  std::fprintf(stderr, "saepipe: %s ended by signal %d\n", argv[0].c_str(), WTERMSIG(status));
  return 1;
}

}  // namespace

std::vector<std::string> stage_command(const std::string& stage, const std::string& job_arg, int ranks,
                                       const std::string& launcher) {
  std::string prog = program_dir() + "/saepipe-" + stage;
  std::vector<std::string> cmd;
  if (ranks > 1 || !launcher.empty()) {
    std::string mpirun = launcher;
    if (mpirun.empty()) {
      const char* env = std::getenv("SAEPIPE_MPIRUN");
      mpirun = env && *env ? env : "mpirun";
    }
    cmd.push_back(mpirun);
    cmd.push_back("-np");
    cmd.push_back(std::to_string(ranks));
    if (std::filesystem::path(mpirun).filename() == "mpirun" || std::filesystem::path(mpirun).filename() == "mpiexec") {
      // Threads of a rank must not be pinned to one core; more ranks than cores is fine here.
      cmd.insert(cmd.end(), {"-q", "--bind-to", "none", "--oversubscribe"});
      if (::geteuid() == 0) cmd.push_back("--allow-run-as-root");
    }
  }
  cmd.push_back(prog);
  cmd.push_back("--job");
  cmd.push_back(job_arg.empty() ? "-" : job_arg);
  return cmd;
}

int run_stages(const Job& job, const std::string& job_arg, const LaunchOptions& opt) {
  for (const auto& s : opt.only) {
    bool known = false;
    for (const auto& k : kStages) known = known || k == s;
    if (!known) user_error("--only: unknown stage \"" + s + "\" (stages: harvest, train, stats, interpret)");
  }
  write_resolved_job(job);
  forward_signals_to_stage();
  for (const auto& stage : kStages) {
    bool selected = opt.only.empty();
    for (const auto& s : opt.only) selected = selected || s == stage;
    if (!selected) continue;
    if (stop_requested()) {
      std::fprintf(stderr, "saepipe: stopped by a signal before stage %s; run the same command again to continue\n",
                   stage.c_str());
      return kExitInterrupted;
    }
    int ranks = opt.ranks > 0 ? opt.ranks : int(job.resources(stage).ranks);
    std::vector<std::string> extra_env;
    // Share the cores between ranks unless the user chose a thread count.
    if (!std::getenv("OMP_NUM_THREADS")) {
      unsigned hw = std::max(1u, std::thread::hardware_concurrency());
      extra_env.push_back("OMP_NUM_THREADS=" + std::to_string(std::max(1u, hw / unsigned(ranks))));
    }
    // Idle OpenMP threads sleep instead of spinning unless the user chose: beside one busy
    // process on 2 cores, spinning threads made the quickstart's train 2-6x slower (README).
    if (!std::getenv("OMP_WAIT_POLICY")) extra_env.push_back("OMP_WAIT_POLICY=passive");
    auto cmd = stage_command(stage, job_arg, ranks, opt.launcher);
    std::string line;
    for (const auto& c : cmd) line += (line.empty() ? "" : " ") + c;
    std::fprintf(stderr, "saepipe: %s\n", line.c_str());
    std::fflush(stderr);
    int rc = spawn_and_wait(cmd, extra_env);
    // Asked to stop, a stage may also end by the signal itself (one that came before its ranks
    // could catch it): its outputs are as resumable as after a checkpoint.
    if (rc == kExitInterrupted || (stop_requested() && rc > 128)) {
      std::fprintf(stderr, "saepipe: stage %s was interrupted after saving what it could; run the same command "
                   "again to resume (later stages not run)\n", stage.c_str());
      return kExitInterrupted;
    }
    if (rc != 0) {
      std::fprintf(stderr, "saepipe: stage %s failed with exit code %d; later stages not run\n", stage.c_str(), rc);
      return rc;
    }
  }
  return 0;
}

}  // namespace saepipe
