// The two passes of the stats stage over the held-out tokens. The first needs nothing but the
// codes: reconstruction metrics, fire counts, activation sums and maxima, the top examples. The
// second needs every latent's global maximum (for its bins): the activation histograms, the
// fine histograms the quantiles are read from, and the interval samples. Each rank accumulates
// its own batches; reduce() makes the totals (identical for any number of ranks) on every rank.
//
// Shape legend: N tokens in a batch, D d_in, F d_sae, H histogram bins, Q quantile levels.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "pipeline/core/latent_grid.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/sae/sae.hpp"
#include "pipeline/stats/encoded_batch.hpp"
#include "pipeline/stats/exact_sum.hpp"
#include "pipeline/stats/example_selection.hpp"

namespace saepipe {

struct ExampleOptions {
  int64_t top = 20, interval_bins = 10, interval_per_bin = 5, before = 12, after = 4;
  uint64_t seed = 0;
};

// Reconstruction metrics over the held-out tokens (sums, exact and order-independent), against
// what the dictionary reconstructs (a transcoder's target; D is then d_out). With L > 1 layers
// (crosscoders: D = L blocks of D / L) also each layer's sse and sum |x|^2.
struct ReconstructionSums {
  explicit ReconstructionSums(int64_t D, int64_t L = 1) : D(D), L(L), sums(size_t(4 + D + (L > 1 ? 2 * L : 0))) {}
  // x, recon [N, D]; active = number of (token, latent) pairs with z > 0 in the batch.
  void add(const float* x, const float* recon, int64_t N, int64_t active);
  // Only the active count (a latent shard other than its group's lead: the lead counts the
  // group's shared reconstruction, every shard its own latents' activations).
  void add_active(int64_t active) { sums.add(2, double(active)); }
  int64_t D, L;
  ExactSums sums;  // sse, sum |x|^2, active, sum cos(x, x_hat), sum x [D], (L > 1) [sse_l, sum |x_l|^2] [L]
  int64_t n_tokens = 0;
};

class FirstPass {
 public:
  // d_out: the width of what is reconstructed; layers: a crosscoder's (per-layer sums).
  FirstPass(int64_t d_out, int64_t d_sae, const ExampleOptions& opt, int64_t layers = 1);
  // recon null: count the activations only (ReconstructionSums::add_active).
  void add(const EncodedBatch& b, const float* x, const float* recon);
  void reduce(const MpiEnv& env) { reduce(env, env); }  // collective
  // Latent shards: the reconstruction sums over every rank (`world`), the per-latent totals over
  // the ranks holding the same latents (`latents`: the grid's data group). Collective on both.
  void reduce(const MpiEnv& world, const MpiEnv& latents);
  // Fills counts, densities, means, maxima and flags; returns the top examples (collective).
  void finish(FeatureStats& fs, double dense_threshold, double ultralow_threshold) const;
  ExampleSet top_examples(const MpiEnv& env) const { return top_.merge(env, 1); }
  const std::vector<float>& max_activation() const { return max_; }
  const ReconstructionSums& recon() const { return recon_; }

 private:
  int64_t F_;
  ReconstructionSums recon_;
  std::vector<int64_t> fire_;
  ExactSums act_sum_;
  std::vector<float> max_;
  ExampleSelection top_;
};

class SecondPass {
 public:
  static constexpr int64_t kFineBins = 256;  // quantiles are exact to max_activation / kFineBins
  // first_latent: the global index of latent 0 here (a latent shard's first), which the
  // interval samples' hash takes so that they do not depend on the grid.
  SecondPass(const std::vector<float>& max_activation, int64_t hist_bins, const ExampleOptions& opt,
             int64_t first_latent = 0);
  void add(const EncodedBatch& b);
  void reduce(const MpiEnv& env);  // collective
  void finish(FeatureStats& fs, const std::vector<double>& quantile_levels) const;
  ExampleSet interval_examples(const MpiEnv& env) const { return bins_ > 0 ? interval_.merge(env, bins_) : ExampleSet{}; }

 private:
  int64_t F_, H_, bins_, first_;
  uint64_t seed_;
  std::vector<float> max_;
  std::vector<int64_t> hist_, fine_;  // [F, H], [F, kFineBins]
  ExampleSelection interval_;
};

// The stats stage's work on one device, made by the backend (pipeline/stages/backend.hpp): the
// SAE's encoder and the two passes above, with their reductions over the ranks. cpu:
// sae_encode_decode + FirstPass + SecondPass (make_cpu_feature_passes); cuda:
// pipeline/stats/cuda/feature_passes.hpp. The stage's loop over batches, the scratch file of
// codes and the outputs are the same whichever it is, and so are the results' layout.
class FeaturePasses {
 public:
  virtual ~FeaturePasses() = default;
  // Encodes rows [first_row, first_row + n) of the store (x [n, D] and tokens [n] on the host,
  // whole sequences of L rows); the codes, on the host, valid until the next call.
  virtual EncodedBatch encode(const float* x, const int32_t* tokens, int64_t first_row, int64_t n, int64_t L) = 0;
  // Pass 1 on the batch just encoded; y: what it reconstructs (x as given to encode, or a
  // transcoder's target rows [n, d_out]) for the reconstruction metrics.
  virtual void first_add(const float* y) = 0;
  // Collective: pass 1's totals over every rank; then the examples (collective too).
  virtual void first_reduce(const MpiEnv& env) = 0;
  virtual ExampleSet top_examples(const MpiEnv& env) = 0;
  // Pass 2 (after first_reduce) on codes: the batch just encoded or codes read back from the
  // scratch file.
  virtual void second_add(const EncodedBatch& codes) = 0;
  virtual void second_reduce(const MpiEnv& env) = 0;
  virtual ExampleSet interval_examples(const MpiEnv& env) = 0;
  // After both reductions: as FirstPass::finish then SecondPass::finish.
  virtual void finish(FeatureStats& fs, double dense_threshold, double ultralow_threshold,
                      const std::vector<double>& quantile_levels) const = 0;
  virtual const ReconstructionSums& recon() const = 0;  // after first_reduce
};

std::unique_ptr<FeaturePasses> make_cpu_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                       int64_t hist_bins, const ExampleOptions& opt);
// Latent shards ([resources.stats] latent_shards = S > 1; the grid: latent_grid.hpp): `params`
// holds this rank's latents [grid.shard() * Fs, + Fs) (b_dec whole). encode() is collective over
// the shard group (topk's exact global selection: latent_shard_merge.hpp; the reconstruction
// summed in float64) and returns this shard's codes with local latent indices; the reductions,
// given the world, sum the per-latent totals over grid.data_group() and the reconstruction
// metrics (the lead shard's) over the world; finish() fills this shard's latents (d_sae = Fs;
// its density histogram covers them only: finish_density_histogram redoes it once assembled).
std::unique_ptr<FeaturePasses> make_cpu_sharded_feature_passes(const SaeParams& params, const SaeConfig& config,
                                                               int64_t hist_bins, const ExampleOptions& opt,
                                                               const LatentGrid& grid);

// The per-latent counts, densities, means (act_sum / fire), maxima and dead / dense / ultra-low
// flags from the reduced totals [F]. Shared by FirstPass and its CUDA twin.
void finish_counts(FeatureStats& fs, int64_t n_tokens, int64_t F, const int64_t* fire, const double* act_sum,
                   const float* max, double dense_threshold, double ultralow_threshold);

// The quantiles from the fine histograms fine [F, fine_bins] over (0, max[f]], and the
// log10-density histogram of the live latents in density_bins bins (fs's counts and densities
// must be filled). Shared by SecondPass and its CUDA twin.
void finish_quantiles_and_density(FeatureStats& fs, const int64_t* fine, int64_t fine_bins, const float* max,
                                  const std::vector<double>& quantile_levels, int64_t density_bins);
// The density histogram part of the above (fs's counts, densities and n_tokens filled).
void finish_density_histogram(FeatureStats& fs, int64_t density_bins);

// Quantile `q` of n values from their histogram `counts` [B] of equal bins over (0, hi]: the
// value of rank ceil(q n) lies in the bin found; linear interpolation inside it.
float quantile_from_histogram(const int64_t* counts, int64_t B, float hi, double q);

}  // namespace saepipe
