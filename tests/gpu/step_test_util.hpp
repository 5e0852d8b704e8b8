// Shared by the CUDA training-step tests (test_cuda_step.cpp, test_cuda_latent_shards.cpp): a
// random SAE, a run of a TrainStep's steps with what each step returned, and parameters
// compared block by block.
//
// Shape legend: D d_in, F d_sae.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "pipeline/sae/sae.hpp"
#include "pipeline/sae/train_step.hpp"
#include "tests/gpu/cuda_test_util.hpp"

namespace saepipe::test {

// init_tied(seed); b_enc and b_dec random (seeds + 1 and + 2); every log_threshold equal.
inline SaeParams random_sae(int64_t D, int64_t F, uint64_t seed, float log_threshold) {
  SaeParams p(D, F);
  init_tied(p, seed);
  auto be = random_normal(size_t(F), seed + 1, 0.05f), bd = random_normal(size_t(D), seed + 2, 0.1f);
  std::copy(be.begin(), be.end(), p.b_enc());
  std::copy(bd.begin(), bd.end(), p.b_dec());
  std::fill(p.log_threshold(), p.log_threshold() + F, log_threshold);
  return p;
}

// A run of steps: each step's totals and fire counts [F], the state after the last.
struct TrainRun {
  SaeParams params;
  AdamState adam;
  std::vector<StepTotals> totals;
  std::vector<std::vector<double>> fire;
};

// Steps s in [first, first + steps) from p and `start`: batch(s) gives the StepBatch of step s,
// dead(s) its dead latents (std::vector<uint8_t> [F]); lr 1e-3, l1 0.3, l0 0.05.
template <class BatchOf, class DeadOf>
TrainRun run_steps(TrainStep& step, const SaeParams& p, const AdamState& start, int first, int steps,
                   BatchOf&& batch, DeadOf&& dead) {
  step.set_state(p, start);
  TrainRun r;
  for (int s = first; s < first + steps; ++s) {
    const std::vector<uint8_t> dead_s = dead(s);
    const StepTotals& t = step.step(batch(s), dead_s.data(), StepSchedule{1e-3f, 0.3, 0.05});
    r.totals.push_back(t);
    r.fire.emplace_back(t.fire, t.fire + p.d_sae);
  }
  step.get_state(r.params, r.adam);
  return r;
}

// got against ref (vectors in SaeParams' layout, shaped as p), per parameter block within rtol
// of the block's largest |ref|.
template <class T>
void expect_params_close(const std::vector<T>& got, const std::vector<T>& ref, const SaeParams& p, double rtol,
                         const std::string& what = "") {
  const int64_t offs[] = {p.off_W_encT(), p.off_b_enc(), p.off_W_dec(), p.off_b_dec(), p.off_log_threshold(), p.size()};
  const char* names[] = {"W_encT", "b_enc", "W_dec", "b_dec", "log_threshold"};
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (int blk = 0; blk < 5; ++blk) {
    SCOPED_TRACE(what + " " + names[blk]);
    std::vector<double> a(got.begin() + offs[blk], got.begin() + offs[blk + 1]);
    std::vector<double> b(ref.begin() + offs[blk], ref.begin() + offs[blk + 1]);
    double scale = 0.0;
    for (double v : b) scale = std::max(scale, std::abs(v));
    expect_close(a, b, std::vector<double>(b.size(), scale), rtol, names[blk]);
  }
}

}  // namespace saepipe::test
