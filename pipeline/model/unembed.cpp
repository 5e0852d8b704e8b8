#include "pipeline/model/unembed.hpp"

#include <algorithm>

#include "kernels/kernels.hpp"
#include "pipeline/model/decoder_ops.hpp"

namespace saepipe {

namespace {
// Vocabulary columns per BLAS call: 50 slices for GPT-2's 50257 tokens keeps 2..16 threads busy,
// and a [D, 1024] slice of W_U (3 MiB for d 768) stays in cache while BLAS packs it.
constexpr int64_t kVocabSlice = 1024;
}  // namespace

void unembed(const TransformerModel& m, const float* x, int64_t M, float* logits) {
  const int64_t D = m.d_model(), V = m.vocab_size(), n_slices = (V + kVocabSlice - 1) / kVocabSlice;
  const float* U = m.unembedding();  // [V, D]
#pragma omp parallel for schedule(static)
  for (int64_t sl = 0; sl < n_slices; ++sl) {
    const int64_t v0 = sl * kVocabSlice, nv = std::min(V, v0 + kVocabSlice) - v0;
    cpu::matmul(false, true, M, nv, D, 1.0f, x, D, U + v0 * D, D, 0.0f, logits + v0, V);
  }
  if (m.final_logit_softcap() > 0) decoder_ops::softcap(logits, M * V, m.final_logit_softcap());
}

}  // namespace saepipe
