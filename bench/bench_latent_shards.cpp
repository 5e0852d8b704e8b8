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
// Memory: each rank draws its own latents of the tied init (init_tied from its first latent, as
// the train stage's start does) and hands them to the step (set_local_state); `start_peak_mb` is
// the peak up to there. The kernel's peak (VmHWM) is then reset (clear_refs 5), so
// `step_peak_mb` is the steps' own peak: this rank's shard of W_enc, b_enc, W_dec and the
// thresholds with their Adam moments, its float64 gradient, the workspaces and the batch.
// With --write DIR, after the steps (peak reset before each): `write_peak_mb` and `write_s` for
// train_state.h5 and sae.h5 written as the train stage does (sharded: every rank its latent range,
// collectively with parallel HDF5; unsharded: rank 0), and, for the same run's reference,
// `gather_write_peak_mb` and `gather_write_s` for the way sharded runs wrote before: the whole
// state gathered (get_state) and written by rank 0. Prints one JSON line (rank 0) with every
// rank's figures.
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
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/train_state.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/sae_checkpoint.hpp"
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
  std::string write_dir;
  app.add_option("--d", D);
  app.add_option("--f", F);
  app.add_option("--k", K);
  app.add_option("--batch", B);
  app.add_option("--shards", S);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--write", write_dir, "write the checkpoints into this directory (and measure)");
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
  const int64_t Fs = F / S, first = int64_t(grid.shard()) * Fs;
  {
    SaeParams mine(D, Fs);
    init_tied(mine, 7, first);
    step->set_local_state(mine, AdamState{});
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

  const double step_peak = status_mb("VmHWM");

  double write_peak = 0, write_s = 0, gather_peak = 0, gather_s = 0;
  if (!write_dir.empty()) {
    const bool first_group = grid.data_group_index() == 0;
    const LatentPart part{first, Fs, F, first_group, first_group && grid.shard() == 0};
    auto header = [&](int64_t adam_t) {
      TrainState st;
      st.step = steps;
      st.d_in = st.d_out = D;
      st.d_sae = F;
      st.adam_t = adam_t;
      st.since_fired.assign(size_t(F), 0);
      return st;
    };
    malloc_trim(0);
    reset_peak();
    world.barrier();
    double t = MPI_Wtime();
    if (S > 1) {  // as TrainModel::save_state and finish
      step->visit_local_state([&](const SaeParams& local, const AdamState& adam) {
        write_train_state_collective(write_dir + "/train_state.h5", header(adam.t), local.data.data(), adam.m.data(),
                                     adam.v.data(), part, world);
      });
      SaeCheckpoint ck;
      step->visit_local_state([&](const SaeParams& local, const AdamState&) {
        ck = sae_to_checkpoint(local, Architecture::TopK, 1.0, 0);
      });
      write_sae_checkpoint_collective(write_dir + "/sae.h5", ck, part, world);
    } else if (world.is_root()) {
      SaeParams whole;
      AdamState adam;
      step->get_state(whole, adam);
      TrainState st = header(adam.t);
      st.params = whole.data;
      st.adam_m = std::move(adam.m);
      st.adam_v = std::move(adam.v);
      write_train_state(write_dir + "/train_state.h5", st);
      st = TrainState();
      write_sae_checkpoint(write_dir + "/sae.h5", sae_to_checkpoint(whole, Architecture::TopK, 1.0, 0));
    }
    world.barrier();
    write_s = MPI_Wtime() - t;
    write_peak = status_mb("VmHWM");
    if (S > 1) {  // the earlier way: gathered on every rank of the shard group, rank 0 writes
      malloc_trim(0);
      reset_peak();
      world.barrier();
      t = MPI_Wtime();
      {
        SaeParams whole;
        AdamState adam;
        step->get_state(whole, adam);
        if (world.is_root()) {
          TrainState st = header(adam.t);
          st.params = whole.data;
          st.adam_m = std::move(adam.m);
          st.adam_v = std::move(adam.v);
          write_train_state(write_dir + "/gathered_train_state.h5", st);
          st = TrainState();
          write_sae_checkpoint(write_dir + "/gathered_sae.h5", sae_to_checkpoint(whole, Architecture::TopK, 1.0, 0));
        }
      }
      world.barrier();
      gather_s = MPI_Wtime() - t;
      gather_peak = status_mb("VmHWM");
    }
  }

  const std::vector<float> mine = {float(start_peak), float(step_peak), float(comm_s), float(step_s),
                                   float(comm_bytes), float(write_peak), float(write_s), float(gather_peak),
                                   float(gather_s)};
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
      if (!write_dir.empty()) {
        j["write_peak_mb"].push_back(v[5]);
        j["write_s"].push_back(v[6]);
        if (S > 1) {
          j["gather_write_peak_mb"].push_back(v[7]);
          j["gather_write_s"].push_back(v[8]);
        }
      }
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
