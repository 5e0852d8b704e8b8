// The stats stage's two passes (pipeline/stats/feature_passes.hpp) on the GPU, for codes that
// are already on the device, plus a TopK encoder to make them there. Every counter, histogram
// and example selection lives on the device between batches; only the results come back.
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
// One rank here: the multi-rank reduction (MPI sums of the raw accumulators, merging the
// example lists) is what the stats stage would add around this when it gets run.device.
//
// Shape legend: n tokens in a batch, W slots per token (width), D d_in, F d_sae, H histogram
// bins, G selection groups, S slots per group, Cx context tokens (before + 1 + after), K top-k.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
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
  CudaFeaturePasses(int64_t d_in, int64_t d_sae, int64_t hist_bins, const ExampleOptions& opt);
  ~CudaFeaturePasses();
  CudaFeaturePasses(const CudaFeaturePasses&) = delete;
  CudaFeaturePasses& operator=(const CudaFeaturePasses&) = delete;

  // Pass 1 on a batch: fire counts, activation sums, maxima, top examples; with x and recon
  // ([n, D], device; both or neither) the reconstruction sums.
  void first_add(const DeviceCodes& b, const float* x, const float* recon, cudaStream_t s);
  // The maxima of pass 1 (synchronises).
  std::vector<float> max_activation(cudaStream_t s) const;
  // Pass 2 bins by these maxima (pass 1's, reduced over ranks when there are several).
  void begin_second(const std::vector<float>& max_activation, cudaStream_t s);
  void second_add(const DeviceCodes& b, cudaStream_t s);

  // As FirstPass::finish and SecondPass::finish (synchronise).
  void finish_first(FeatureStats& fs, double dense_threshold, double ultralow_threshold, cudaStream_t s) const;
  void finish_second(FeatureStats& fs, const std::vector<double>& quantile_levels, cudaStream_t s) const;
  // As FirstPass::top_examples / SecondPass::interval_examples on one rank.
  ExampleSet top_examples(cudaStream_t s) const;
  ExampleSet interval_examples(cudaStream_t s) const;
  // ReconstructionSums::sums.value(i), i < 4 + D, and its n_tokens.
  std::vector<double> recon_sums(cudaStream_t s) const;
  int64_t n_tokens() const { return n_tokens_; }

 private:
  struct Selection;
  struct Device;

  int64_t D_, F_, H_, bins_;
  ExampleOptions opt_;
  int64_t n_tokens_ = 0;
  std::unique_ptr<Device> dev_;
  std::unique_ptr<Selection> top_, interval_;
};

// TopK SAE inference on the device: idx/val [n, K] (ReLU'd top-k of (x - b_dec) W_enc + b_enc,
// ties to the lower latent, as sae_encode_decode) and recon [n, D]. The encoder matmul runs in
// `precision` (FP32 reproduces the CPU's codes up to matmul rounding); rows go through in
// chunks of `chunk` so that the [chunk, F] pre-activations stay small.
class CudaTopKEncoder {
 public:
  CudaTopKEncoder(const SaeParams& p, int64_t k, GemmPrecision precision, int64_t chunk = 4096);
  // x [n, D] on the device; results valid until the next call.
  void encode(const float* x, int64_t n, Blas& blas, cudaStream_t s);
  const int32_t* idx() const { return idx_.data(); }
  const float* val() const { return val_.data(); }
  const float* recon() const { return recon_.data(); }
  int64_t k() const { return k_; }

 private:
  int64_t D_, F_, k_, chunk_;
  GemmPrecision precision_;
  DeviceBuffer<float> W_encT_, b_enc_, W_dec_, b_dec_, xc_, pre_, val_, recon_;
  DeviceBuffer<int32_t> idx_;
};

}  // namespace saepipe::cuda
