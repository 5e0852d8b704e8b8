// Bounded selections of examples, one per group (a latent, or a latent's activation bin):
// each group keeps the `slots` examples of highest priority, ties to the lower store row, with
// their contexts. The order is total, so the selection over all tokens is the same whichever
// ranks saw which tokens; merge() combines the ranks' selections into exactly that one.
//
// Shape legend: G groups, S slots per group, C context tokens.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/stats/encoded_batch.hpp"

namespace saepipe {

class ExampleSelection {
 public:
  ExampleSelection(int64_t groups, int64_t slots, int64_t context_before, int64_t context_after);

  // Offers the example (store row, latent f's activation there) to `group`; when it is kept,
  // its context is copied from `batch`.
  void offer(int64_t group, double priority, int64_t row, float activation, int32_t f, const EncodedBatch& batch) {
    const int64_t g = group * slots_;
    int32_t& n = count_[size_t(group)];
    int64_t s;
    if (n < slots_) {
      s = g + n++;
    } else {
      s = g + worst_[size_t(group)];
      if (!better(priority, row, prio_[size_t(s)], row_[size_t(s)])) return;
    }
    prio_[size_t(s)] = priority;
    row_[size_t(s)] = row;
    act_[size_t(s)] = activation;
    batch.context(row, f, before_, after_, ctx_tokens_.data() + s * C_, ctx_acts_.data() + s * C_);
    if (n == slots_) update_worst(group);
  }

  // Combines every rank's selection (collective) and returns the result, best first in each
  // group, as an ExampleSet with per_feature = groups_per_feature * slots.
  ExampleSet merge(const MpiEnv& env, int64_t groups_per_feature) const;

  // A selection made elsewhere (the CUDA passes): per group, count[g] kept examples in slots
  // [0, count[g]) of prio, row, act [G*S] and the contexts [G*S, C]; the other slots are empty.
  static ExampleSelection from_kept(int64_t groups, int64_t slots, int64_t context_before, int64_t context_after,
                                    std::vector<double> prio, std::vector<int64_t> row, std::vector<float> act,
                                    std::vector<int32_t> ctx_tokens, std::vector<float> ctx_acts,
                                    const std::vector<int32_t>& count);

 private:
  static bool better(double p, int64_t r, double q, int64_t s) { return p > q || (p == q && r < s); }
  void update_worst(int64_t group);

  int64_t groups_, slots_, before_, after_, C_;
  std::vector<double> prio_;
  std::vector<int64_t> row_;
  std::vector<float> act_;
  std::vector<int32_t> ctx_tokens_;
  std::vector<float> ctx_acts_;
  std::vector<int32_t> count_, worst_;  // per group: slots used, slot of the worst kept example
};

}  // namespace saepipe
