// batchtopk (Bussmann et al. 2024): the B*k largest positive pre-activations of the whole
// global batch are kept, so tokens share a budget of k active latents on average. Each rank
// offers only its own largest B*k values (no other value can be among the global top B*k);
// the kth_largest callback finds the global threshold (MPI_Allgatherv in the trainer).
//
// Shape legend: N local tokens, F d_sae, B global batch.  pre [N,F].
#include <algorithm>
#include <functional>

#include "pipeline/core/errors.hpp"
#include "pipeline/sae/architectures.hpp"

namespace saepipe {

float local_kth_largest(std::vector<float>& c, int64_t kth) {
  SAE_ASSERT(kth >= 1, "kth must be >= 1");
  if (int64_t(c.size()) < kth) return 0.0f;
  std::nth_element(c.begin(), c.begin() + (kth - 1), c.end(), std::greater<>());
  return c[size_t(kth - 1)];
}

float batchtopk_threshold(const float* pre, int64_t N, int64_t F, int64_t k, int64_t global_batch,
                          const KthLargestFn& kth_largest, std::vector<float>& candidates) {
  const int64_t kth = global_batch * k;
  candidates.clear();
  for (int64_t i = 0; i < N * F; ++i)
    if (pre[i] > 0.0f) candidates.push_back(pre[i]);
  // Keep only this rank's best kth: the rest cannot reach the global top kth.
  if (int64_t(candidates.size()) > kth) {
    std::nth_element(candidates.begin(), candidates.begin() + (kth - 1), candidates.end(), std::greater<>());
    candidates.resize(size_t(kth));
  }
  return kth_largest ? kth_largest(candidates, kth) : local_kth_largest(candidates, kth);
}

}  // namespace saepipe
