// The latent-sharded train step against the data-parallel one at one shape: per rank, the peak
// resident memory of the steps and the tokens/s of the whole grid, for the grid given by the
// rank count and --shards (bench/bench_latent_shards.sh runs S = 1, 2, 4 and 2 data-parallel
// ranks). The step is the train stage's (make_cpu_train_step / make_cpu_sharded_train_step on
// the same LatentGrid), TopK, on the same random global batch every step, rows split over the
// data groups with the encoder's aligned blocks around them as the train stage does.
//
//   mpirun -np R bench_latent_shards --d 768 --f 131072 --k 32 --batch 2048 --shards S
//          [--steps 2 --warmup 1]
//
// Memory: the step is given the whole dictionary once (set_state, as the train stage does at
// start), which is then freed; the kernel's peak (VmHWM) is reset after that (clear_refs 5),
// so `step_peak_mb` is the steps' own peak: this rank's shard of W_enc, b_enc, W_dec and the
// thresholds with their Adam moments, its float64 gradient, the workspaces and the batch.
// `start_peak_mb` is the peak before the reset (the whole dictionary built on every rank: the
// train stage's start, not yet sharded). Checkpoints and the final export are not timed here.
// Prints one JSON line (rank 0) with every rank's figures.
//
// Shape legend: B global batch, D d_in, F d_sae, S latent shards.
#include <CLI/CLI.hpp>
#include <malloc.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/train_step.hpp"

namespace saepipe {
namespace {

// A /proc/self/status field in kB ("VmHWM", "VmRSS"), as MB.
double status_mb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false when the kernel refuses.
bool reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return bool(out);
}

int run(int argc, char** argv) {
  CLI::App app{"latent-sharded train step: peak memory per rank and tokens/s"};
  int64_t D = 768, F = 131072, K = 32, B = 2048;
  int S = 1, steps = 2, warmup = 1;
  app.add_option("--d", D);
  app.add_option("--f", F);
  app.add_option("--k", K);
  app.add_option("--batch", B);
  app.add_option("--shards", S);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.parse(argc, argv);
  const MpiEnv world;
  if (world.size() % S != 0 || F % (int64_t(S) * kTrainEncoderCols) != 0)
    user_error("--shards " + std::to_string(S) + " must divide the ranks and d_sae / (S x 256)");
  const LatentGrid grid(world, S);

  TrainStepConfig c;
  c.d_in = D;
  c.d_sae = F;
  c.sae.architecture = Architecture::TopK;
  c.sae.k = K;
  c.sae.auxk = 0;
  std::unique_ptr<TrainStep> step =
      S > 1 ? make_cpu_sharded_train_step(c, grid) : make_cpu_train_step(c, grid.data_group());
  {
    SaeParams whole(D, F);
    init_tied(whole, 7);
    step->set_state(whole, AdamState{});
  }
  malloc_trim(0);
  const double start_peak = status_mb("VmHWM");

  // The global batch (the same on every rank), this data group's rows and the aligned blocks.
  std::vector<float> x(size_t(B * D));
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(rng);
  const int64_t groups = grid.data_groups(), g = grid.data_group_index(), G = kTrainEncoderBlock;
  const int64_t lo = B * g / groups, hi = B * (g + 1) / groups;
  const int64_t lo_al = lo / G * G, hi_al = std::min(B, (hi + G - 1) / G * G);
  StepBatch b;
  b.x = x.data() + lo_al * D;
  b.lead = lo - lo_al;
  b.n = hi - lo;
  b.tail = hi_al - hi;
  b.first = lo;
  b.global_batch = B;
  StepSchedule sched;
  sched.lr = 1e-4f;

  const bool reset = reset_peak();
  double t0 = 0, comm_s = 0, step_s = 0, comm_bytes = 0;
  for (int i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      world.barrier();
      t0 = MPI_Wtime();
    }
    const StepTotals& t = step->step(b, nullptr, sched);
    if (i >= warmup) {
      comm_s += t.comm_s;
      step_s += t.step_s;
      comm_bytes = t.comm_bytes;
    }
  }
  world.barrier();
  const double seconds = MPI_Wtime() - t0;

  const std::vector<float> mine = {float(start_peak), float(status_mb("VmHWM")), float(comm_s), float(step_s),
                                   float(comm_bytes)};
  const std::vector<float> all = world.allgather(mine);
  if (world.is_root()) {
    nlohmann::json j;
    j["grid"] = grid.describe();
    j["d_in"] = D;
    j["d_sae"] = F;
    j["k"] = K;
    j["global_batch"] = B;
    j["steps"] = steps;
    j["tokens_per_s"] = double(B) * steps / seconds;
    j["peak_reset"] = reset;
    for (int r = 0; r < world.size(); ++r) {
      const float* v = all.data() + r * mine.size();
      j["start_peak_mb"].push_back(v[0]);
      j["step_peak_mb"].push_back(v[1]);
      j["comm_fraction"].push_back(v[3] > 0 ? v[2] / v[3] : 0.0);
      j["comm_bytes_per_step"].push_back(v[4]);
    }
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace saepipe

int main(int argc, char** argv) {
  saepipe::MpiSession mpi(&argc, &argv);
  try {
    return saepipe::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_latent_shards: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
}
