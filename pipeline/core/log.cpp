#include "pipeline/core/log.hpp"

#include <unistd.h>

#include <cstdio>

#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

Logger::Logger(const MpiEnv& env, std::string stage)
    : root_(env.is_root()), rank_(env.rank()), tty_(::isatty(STDERR_FILENO) != 0), stage_(std::move(stage)),
      start_(std::chrono::steady_clock::now()), last_progress_(start_) {}

double Logger::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Logger::rank_info(const std::string& message) const {
  std::fprintf(stderr, "%s[%s %7.1fs rank %d] %s\n", progress_open_ && tty_ ? "\n" : "", stage_.c_str(), elapsed_s(),
               rank_, message.c_str());
  std::fflush(stderr);
}

void Logger::info(const std::string& message) const {
  if (!root_) return;
  std::fprintf(stderr, "%s[%s %7.1fs] %s\n", progress_open_ && tty_ ? "\n" : "", stage_.c_str(),
               elapsed_s(), message.c_str());
  std::fflush(stderr);
}

void Logger::progress(int64_t done, int64_t total, const std::string& suffix) {
  if (!root_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_progress_).count();
  bool last = done >= total;
  if (!last && since < (tty_ ? 0.5 : 10.0)) return;
  last_progress_ = now;
  double pct = total > 0 ? 100.0 * double(done) / double(total) : 100.0;
  std::fprintf(stderr, "%s[%s %7.1fs] %5.1f%% %lld/%lld %s%s", tty_ ? "\r" : "", stage_.c_str(),
               elapsed_s(), pct, (long long)done, (long long)total, suffix.c_str(),
               tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
  progress_open_ = tty_;
}

void Logger::end_progress() {
  if (root_ && progress_open_) std::fprintf(stderr, "\n");
  progress_open_ = false;
}

}  // namespace saepipe
