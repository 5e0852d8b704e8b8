#include "pipeline/core/stage_record.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "pipeline/core/job.hpp"
#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

namespace {

std::string records_path(const Job& job) { return job.run_dir() + "/stages.jsonl"; }

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string rank_host(const MpiEnv& env) {
  const char* node = std::getenv("SLURMD_NODENAME");
  return node && *node ? node : env.host();
}

void record_stage_event(const MpiEnv& env, const Job& job, const std::string& stage, const std::string& event,
                        nlohmann::json fields) {
  if (!env.is_root()) return;
  nlohmann::json rec = {{"time", utc_now()}, {"stage", stage}, {"event", event}};
  for (auto& [k, v] : fields.items()) rec[k] = v;
  // One write of one line with O_APPEND: records of earlier runs stay, and only rank 0 of the
  // running stage writes. Text that is not UTF-8 (a path) is replaced, never an error.
  const std::string line = rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const std::string path = records_path(job);
  std::error_code ec;
  if (!std::filesystem::is_directory(job.run_dir(), ec)) return;  // records never create the run
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, line.data(), line.size());
  (void)ignored;
  ::close(fd);
}

std::vector<nlohmann::json> read_stage_events(const Job& job) {
  std::vector<nlohmann::json> out;
  std::ifstream in(records_path(job));
  std::string line;
  while (std::getline(in, line)) {
    auto rec = nlohmann::json::parse(line, nullptr, false);
    if (rec.is_object() && rec.contains("stage") && rec.contains("event")) out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace saepipe
