// harvest: write the activation store. Shard s holds tokens [s*S, s*S + S) and is written
// by rank s % P; every token depends only on (seed, token index), so the store is the same
// for any number of ranks. Complete shards are kept on a re-run; rank 0 writes the
// ground truth, the manifest (last: its presence means the store is complete) and the VDS.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/core/log.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/model/synthetic.hpp"
#include "pipeline/stages/stages.hpp"

namespace saepipe {

namespace {

// Everything that determines the store's content: shards from another job are never reused.
nlohmann::json source_description(const HarvestConfig& h) {
  return {{"type", h.source},
          {"d_model", h.synthetic.d_model},
          {"n_features", h.synthetic.n_features},
          {"mean_active", h.synthetic.mean_active},
          {"decay", h.synthetic.decay},
          {"seed", h.synthetic.seed},
          {"generator", "saepipe.synthetic.v1"}};
}

std::string fingerprint_of(const HarvestConfig& h) {
  nlohmann::json f = {{"source", source_description(h)}, {"hooks", h.hooks}, {"n_tokens", h.n_tokens},
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

}  // namespace

void run_harvest(const Job& job, const MpiEnv& env) {
  Logger log(env, "harvest");
  h5::silence_errors();
  const HarvestConfig& h = job.harvest;
  const std::string dir = job.run_dir() + "/activations";
  const std::string fingerprint = fingerprint_of(h);
  bool done = false;
  env.all_or_none([&] {
    if (h.source == "synthetic" && h.hooks.size() != 1)
      user_error(job.path + ": harvest.hooks: the synthetic source writes exactly one hook, got " +
                 std::to_string(h.hooks.size()));
    SyntheticModel check(h.synthetic);  // validates mean_active
    make_dirs(dir);
    if (env.is_root()) write_resolved_job(job);
    done = store_complete(dir, fingerprint);
  });
  if (done) {
    log.info("store " + dir + " is complete; nothing to do");
    return;
  }

  const StoreDtype dtype = parse_store_dtype(h.dtype);
  const SyntheticModel model(h.synthetic);
  const int64_t D = model.d_model();
  const int64_t n_shards = (h.n_tokens + h.shard_tokens - 1) / h.shard_tokens;
  log.info("writing " + std::to_string(h.n_tokens) + " tokens of d_model " + std::to_string(D) + " as " +
           std::to_string(n_shards) + " shard(s) over " + std::to_string(env.size()) + " rank(s) to " + dir);

  int64_t written = 0, kept = 0;
  for (int64_t s = env.rank(); s < n_shards; s += env.size()) {
    const int64_t first = s * h.shard_tokens;
    const int64_t n = std::min(h.shard_tokens, h.n_tokens - first);
    const std::string path = dir + "/" + shard_name(s);
    if (shard_complete(path, fingerprint, first, n)) {
      ++kept;
      continue;
    }
    ShardData data;
    data.first_token = first;
    data.n_tokens = n;
    data.activations.assign(1, std::vector<float>(size_t(n * D)));
    data.tokens.resize(size_t(n));
    data.sequence.resize(size_t(n));
    data.position.resize(size_t(n));
    model.generate(first, n, data.activations[0].data(), data.tokens.data());
    for (int64_t r = 0; r < n; ++r) {
      data.sequence[r] = (first + r) / h.context;
      data.position[r] = int32_t((first + r) % h.context);
    }
    write_shard(path, data, h.hooks, D, dtype, fingerprint);
    ++written;
    log.progress(s + 1, n_shards, "shards");
  }
  log.end_progress();
  int64_t total_written = env.allreduce_sum(written), total_kept = env.allreduce_sum(kept);

  if (env.is_root()) {
    write_ground_truth(dir, model.features().data(), model.n_features(), D);
    StoreManifest m;
    m.d_model = D;
    m.dtype = h.dtype;
    m.hooks = h.hooks;
    m.n_tokens = h.n_tokens;
    m.context = h.context;
    m.source = source_description(h);
    m.source["fingerprint"] = fingerprint;
    for (int64_t s = 0; s < n_shards; ++s) {
      const int64_t first = s * h.shard_tokens;
      m.shards.push_back({shard_name(s), first, std::min(h.shard_tokens, h.n_tokens - first), int(s % env.size())});
    }
    write_virtual_store(dir, m);
    m.write(dir);
  }
  env.barrier();
  log.info("done: " + std::to_string(total_written) + " shard(s) written, " + std::to_string(total_kept) +
           " kept from an earlier run");
}

}  // namespace saepipe
