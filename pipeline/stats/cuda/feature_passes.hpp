// The stats stage's two passes (pipeline/stats/feature_passes.hpp) on the GPU, for codes that
// are already on the device, and the FeaturePasses the CUDA backend gives the stage (the
// encoder on the device too). Every counter, histogram and example selection lives on the
// device between batches; only the totals come back.
//
// Same outputs and rules as the CPU passes, bit for bit for the same codes:
//   counts, histograms   integer atomics (order-free);
//   sums                 the CPU's ExactSums fixed point (multiples of 2^-40 in 128 bits),
//                        added with 64-bit atomics and an explicit carry (order-free);
//                        the reconstruction terms per token in fp64 in the CPU's order,
//                        without contraction;
//   maxima               atomicMax on the bits of positive floats;
//   examples             per group the `slots` best by (priority desc, row asc), as
//                        ExampleSelection: each batch's candidates are radix-sorted (stable) by
//                        (group, key) and merged into the kept lists, contexts copied from the
//                        batch as EncodedBatch::context does.
// tests/gpu/test_cuda_stats.cpp compares everything with FirstPass / SecondPass.
//
// Several ranks: the raw accumulators come to the host and are reduced with MPI as the CPU
// passes reduce theirs; the example lists are merged by ExampleSelection::merge.
//
// Shape legend: n tokens in a batch, W slots per token (width), D d_in, F d_sae, H histogram
// bins, G selection groups, S slots per group, Cx context tokens (before + 1 + after), K top-k.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/stats/feature_passes.hpp"

namespace saepipe::cuda {

// One batch of codes on the device (EncodedBatch's fields).
struct DeviceCodes {
  int64_t first_row = 0, n = 0;
  int64_t sequence_length = 1;
  const int32_t* tokens = nullptr;  // [n]
  const int32_t* idx = nullptr;     // [n, W], -1 = empty
  const float* val = nullptr;       // [n, W]
  int64_t width = 0;
};

// Largest `slots` a selection supports (top examples, interval samples per bin).
constexpr int64_t kMaxExampleSlots = 256;

class CudaFeaturePasses {
 public:
  // Zeroes its counters on stream s (ordered before the first add there). first_latent: the
  // global index of latent 0 here (a latent shard's first), which the interval samples' hash
  // takes (as SecondPass's), so that they do not depend on the grid.
  CudaFeaturePasses(int64_t d_in, int64_t d_sae, int64_t hist_bins, const ExampleOptions& opt, cudaStream_t s,
                    int64_t first_latent = 0);
  ~CudaFeaturePasses();
  CudaFeaturePasses(const CudaFeaturePasses&) = delete;
  CudaFeaturePasses& operator=(const CudaFeaturePasses&) = delete;

  // Pass 1 on a batch: fire counts, activation sums, maxima, top examples; with x and recon
  // ([n, D], device; both or neither) the reconstruction sums and the tokens; without them the
  // active count only (a latent shard other than its group's lead, as FirstPass::add).
  void first_add(const DeviceCodes& b, const float* x, const float* recon, cudaStream_t s);
  // Collective: pass 1's counters, sums and maxima come to the host and are summed over every
  // rank as FirstPass::reduce does (identical for any number of ranks).
  void first_reduce(const MpiEnv& env, cudaStream_t s) { first_reduce(env, env, s); }
  // Latent shards: the reconstruction sums over every rank (`world`), the per-latent totals over
  // the ranks holding the same latents (`latents`), as FirstPass::reduce.
  void first_reduce(const MpiEnv& world, const MpiEnv& latents, cudaStream_t s);
  const std::vector<float>& max_activation() const;  // after first_reduce
  const ReconstructionSums& recon() const;           // after first_reduce
  // Collective: the top examples merged over the ranks (ExampleSelection::merge).
  ExampleSet top_examples(const MpiEnv& env, cudaStream_t s) const;

  // Pass 2 bins by first_reduce's maxima.
  void second_add(const DeviceCodes& b, cudaStream_t s);
  void second_reduce(const MpiEnv& env, cudaStream_t s);  // collective
  ExampleSet interval_examples(const MpiEnv& env, cudaStream_t s) const;  // collective

  // As FirstPass::finish and SecondPass::finish, from the reduced totals.
  void finish_first(FeatureStats& fs, double dense_threshold, double ultralow_threshold) const;
  void finish_second(FeatureStats& fs, const std::vector<double>& quantile_levels) const;

 private:
  struct Selection;
  struct Device;
  void begin_second(cudaStream_t s);

  int64_t D_, F_, H_, bins_, first_;
  ExampleOptions opt_;
  int64_t n_tokens_ = 0;
  std::unique_ptr<Device> dev_;
  std::unique_ptr<Selection> top_, interval_;
  // The reduced totals (host).
  std::vector<int64_t> fire_, hist_, fine_;
  ExactSums act_sum_;
  std::vector<float> max_;
  ReconstructionSums recon_;
};

// The stats stage's FeaturePasses on the current device: DeviceSae (pipeline/sae/cuda/sae.hpp)
// encodes in fp32 (the CPU's codes up to GEMM rounding), the codes come back to the host for
// the scratch file, and CudaFeaturePasses counts. `params` must outlive it.
std::unique_ptr<FeaturePasses> make_cuda_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                        int64_t hist_bins, const ExampleOptions& opt);
// Latent shards: as make_cpu_sharded_feature_passes (pipeline/stats/feature_passes.hpp) on the
// device: `params` holds this rank's latents; encode() is collective over the shard group (topk's
// exact global selection and the float64 reconstruction's sum through host memory and MPI).
std::unique_ptr<FeaturePasses> make_cuda_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                                int64_t hist_bins, const ExampleOptions& opt,
                                                                const LatentGrid& grid);

}  // namespace saepipe::cuda
