// Logging: rank 0 speaks for the job (one line per event, with elapsed time), other ranks
// only for their own failures. A progress line rewrites itself on a terminal and becomes
// plain periodic lines when stderr is a file (SLURM logs).
#pragma once
#include <chrono>
#include <string>

namespace saepipe {

class MpiEnv;

class Logger {
 public:
  Logger(const MpiEnv& env, std::string stage);
  // Rank 0 prints "[stage  12.3s] message".
  void info(const std::string& message) const;
  // Any rank prints "[stage  12.3s rank r] message": an event of that rank alone (a fallback).
  void rank_info(const std::string& message) const;
  // Progress of `done` out of `total` with a suffix (rank 0; throttled to ~2 lines/s).
  void progress(int64_t done, int64_t total, const std::string& suffix);
  void end_progress();
  double elapsed_s() const;
  const std::string& stage() const { return stage_; }

 private:
  bool root_;
  int rank_;
  bool tty_;
  std::string stage_;
  std::chrono::steady_clock::time_point start_, last_progress_;
  bool progress_open_ = false;
};

}  // namespace saepipe
