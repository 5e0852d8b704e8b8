// topk (Gao et al. 2024): per token the k largest pre-activations, then ReLU.
//
// Shape legend: N tokens, F d_sae, K k.  pre [N,F] -> idx, val [N,K].
#include "kernels/kernels.hpp"
#include "pipeline/sae/architectures.hpp"

namespace saepipe {

void select_topk(const float* pre, int64_t N, int64_t F, int64_t K, int32_t* idx, float* val) {
  cpu::topk_rows(pre, N, F, K, nullptr, idx, val);
  // ReLU on the selection: a non-positive slot is not active (the kernels skip idx = -1).
  for (int64_t s = 0; s < N * K; ++s)
    if (!(val[s] > 0.0f)) {
      idx[s] = -1;
      val[s] = 0.0f;
    }
}

}  // namespace saepipe
