// harvest: write the activation store. The store holds n_tokens / context sequences; shard s
// holds sequences [s*Q, s*Q + Q) (Q = shard_tokens / context, whole sequences only) and is
// written by rank s % P. A sequence's rows depend only on its index, so the store is the same
// for any number of ranks. Complete shards are kept on a re-run; rank 0 writes the source's
// extra files, the manifest (last: its presence means the store is complete) and the VDS.
// While a shard is computed, the previous one is written by a second thread (HDF5 is only ever
// called from one thread at a time: completeness checks happen before the loop), its chunks
// encoded and checksummed on a worker pool; the two shard buffers are reused, not reallocated. Ranks go
// through the shards in rounds (round r: shard r*P + rank) and agree on errors after each, so
// an error several ranks meet at once (a full disk) is reported once and all exit cleanly.
#include <chrono>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/interrupt.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/core/stage_record.hpp"
#include "pipeline/core/worker_pool.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/stages/activation_source.hpp"
#include "pipeline/stages/stage_driver.hpp"
#include "pipeline/stages/stages.hpp"

namespace saepipe {

namespace {

// Everything that determines the store's content: shards from another job are never reused.
std::string fingerprint_of(const HarvestConfig& h, const nlohmann::json& source) {
  nlohmann::json f = {{"source", source}, {"hooks", h.hooks}, {"n_tokens", h.n_tokens},
                      {"context", h.context}, {"shard_tokens", h.shard_tokens}, {"dtype", h.dtype}};
  return f.dump();
}

std::string shard_name(int64_t s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%05lld.h5", (long long)s);
  return buf;
}

// True when the store directory already holds this job's complete store.
bool store_complete(const std::string& dir, const std::string& fingerprint) {
  if (!path_exists(dir + "/manifest.json")) return false;
  StoreManifest m = StoreManifest::read(dir);
  if (m.source.value("fingerprint", "") != fingerprint)
    user_error(dir + "/manifest.json: this directory holds a store written by a different job; "
               "remove it or change run.name");
  return path_exists(dir + "/activations.h5");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class HarvestStage final : public StageBody {
 public:
  HarvestStage(const Job& job, const MpiEnv& env, const Backend& backend, Logger& log)
      : job_(job), env_(env), backend_(backend), log_(log), dir_(job.run_dir() + "/activations") {}

  std::string open_inputs() override {
    source_ = make_activation_source(job_, backend_);
    return fingerprint_of(job_.harvest, source_->description());
  }
  std::string output_dir() const override { return dir_; }
  bool complete(const std::string& fingerprint) override { return store_complete(dir_, fingerprint); }
  void run(const std::string& fingerprint) override;

 private:
  const Job& job_;
  const MpiEnv& env_;
  const Backend& backend_;
  Logger& log_;
  const std::string dir_;
  std::unique_ptr<ActivationSource> source_;
};

}  // namespace

void run_harvest(const Job& job, const MpiEnv& env, const Backend& backend) {
  Logger log(env, "harvest");
  HarvestStage stage(job, env, backend, log);
  drive_stage(stage, StageContext{job, env, backend, log});
}

void HarvestStage::run(const std::string& fingerprint) {
  const Job& job = job_;
  const MpiEnv& env = env_;
  Logger& log = log_;
  const std::string& dir = dir_;
  const std::unique_ptr<ActivationSource>& source = source_;
  const HarvestConfig& h = job.harvest;
  const int64_t n_seq = h.n_tokens / h.context, seq_per_shard = h.shard_tokens / h.context;
  const int64_t n_shards = (n_seq + seq_per_shard - 1) / seq_per_shard;
  auto shard_seqs = [&](int64_t s) { return std::min(seq_per_shard, n_seq - s * seq_per_shard); };
  const StoreDtype dtype = parse_store_dtype(h.dtype);
  const int64_t D = source->d_model(), R = source->rows_per_sequence();

  // Which of this rank's shards are still to be written; their inputs are checked first, so a
  // bad token is reported once, before anything is computed.
  std::vector<bool> todo(size_t(n_shards), false);
  int64_t kept = 0, n_todo = 0;
  env.all_or_none([&] {
    for (int64_t s = env.rank(); s < n_shards; s += env.size()) {
      const std::string path = dir + "/" + shard_name(s);
      if (shard_complete(path, fingerprint, s * seq_per_shard * R, shard_seqs(s) * R)) {
        ++kept;
        continue;
      }
      source->check_sequences(s * seq_per_shard, shard_seqs(s));
      todo[size_t(s)] = true;
      ++n_todo;
    }
  });
  // The shards still to write, on every rank, must fit on the store's file system: checked now
  // rather than found out when a write fails hours in.
  int64_t todo_rows = 0;
  for (int64_t s = 0; s < n_shards; ++s)
    if (todo[size_t(s)]) todo_rows += shard_seqs(s) * R;
  todo_rows = env.allreduce_sum(todo_rows);
  const int64_t row_bytes = int64_t(h.hooks.size()) * D * store_dtype_bytes(dtype) + 16;  // + token, sequence, position
  env.all_or_none([&] { require_free_space(dir, todo_rows * row_bytes, "writing the activation store (at least)"); });
  if (const int64_t earlier = env.allreduce_sum(kept); earlier > 0)
    record_stage_event(env, job, "harvest", "resume",
                       {{"from", std::to_string(earlier) + " of " + std::to_string(n_shards) + " shards"}});
  log.info("writing " + std::to_string(n_seq * R) + " tokens (" + std::to_string(n_seq) + " sequences) of d_model " +
           std::to_string(D) + " as " + std::to_string(n_shards) + " shard(s) over " + std::to_string(env.size()) +
           " rank(s) to " + dir);

  const auto t0 = std::chrono::steady_clock::now();
  double wait_s = 0, write_s = 0;  // the compute thread waiting for the writer; the writer busy
  int64_t rows = 0;
  // Declared before the writer's future, whose destructor waits for a write still using them.
  WorkerPool pool;
  ShardData buffers[2];  // one filled while the other is written
  int64_t filled = 0;
  std::future<double> writing;  // the previous shard's write; yields its duration
  auto finish_write = [&] {
    const auto w0 = std::chrono::steady_clock::now();
    if (writing.valid()) write_s += writing.get();  // rethrows the writer's error
    wait_s += seconds_since(w0);
  };
  const int64_t rounds = (n_shards + env.size() - 1) / env.size();
  int64_t done_here = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    env.all_or_none([&] {
      const int64_t s = r * env.size() + env.rank();
      if (s >= n_shards || !todo[size_t(s)]) return;
      ShardData& data = buffers[filled++ % 2];
      source->fill(s * seq_per_shard, shard_seqs(s), data);
      rows += data.n_tokens;
      finish_write();
      writing = std::async(std::launch::async, [&data, path = dir + "/" + shard_name(s), &h, D, dtype, &fingerprint, &pool] {
        const auto start = std::chrono::steady_clock::now();
        write_shard(path, data, h.hooks, D, dtype, fingerprint, &pool);
        return seconds_since(start);
      });
      log.progress(++done_here, n_todo, "shards of rank 0");
    });
    // A safe point: asked to stop, the shards written so far are kept (the one being written
    // is finished first); a re-run writes the rest.
    stop_if_interrupted(env, [&] {
      env.all_or_none(finish_write);
      return std::to_string(env.allreduce_sum(kept + done_here)) + " of " + std::to_string(n_shards) + " shards";
    });
  }
  env.all_or_none(finish_write);
  const double total_s = seconds_since(t0);
  log.end_progress();

  const int64_t total_written = env.allreduce_sum(n_todo), total_kept = env.allreduce_sum(kept);
  const int64_t total_rows = env.allreduce_sum(rows);
  float slowest_s = float(total_s);
  env.allreduce_max(&slowest_s, 1);
  const double max_s = slowest_s;
  const double busy = std::max(1e-9, env.allreduce_sum(total_s));
  const double wait_share = env.allreduce_sum(wait_s) / busy, write_share = env.allreduce_sum(write_s) / busy;

  // Rank 0 writes the store files; a failure there (a full disk) is agreed on and told once.
  env.all_or_none([&] {
    if (!env.is_root()) return;
    source->finish_store(dir);
    StoreManifest m;
    m.d_model = D;
    m.dtype = h.dtype;
    m.hooks = h.hooks;
    m.n_tokens = n_seq * R;
    m.context = R;
    m.source = source->description();
    m.source["fingerprint"] = fingerprint;
    for (int64_t s = 0; s < n_shards; ++s)
      m.shards.push_back({shard_name(s), s * seq_per_shard * R, shard_seqs(s) * R, int(s % env.size())});
    write_virtual_store(dir, m);
    m.write(dir);
  });
  env.barrier();
  char rate[200];
  std::snprintf(rate, sizeof rate, "%.1f s, %.0f tokens/s; HDF5 writes %.1f%% of the time, %.1f%% not overlapped "
                "(waiting for HDF5 writes)", max_s, double(total_rows) / std::max(1e-9, max_s), 100.0 * write_share,
                100.0 * wait_share);
  log.info("done: " + std::to_string(total_written) + " shard(s) written, " + std::to_string(total_kept) +
           " kept from an earlier run" + (total_written ? std::string("; ") + rate : ""));
}

}  // namespace saepipe
