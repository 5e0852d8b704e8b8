// Logits from the output of the final norm (then soft-capped when the model says so, Gemma 2): the unembedding as a matmul cut into fixed
// vocabulary slices spread over the OpenMP threads (one BLAS call per slice; hold a
// SingleThreadedBlas, blas_threads.hpp, around calls, as for the forward pass). The slices do
// not depend on the thread count, so neither do the logits.
//
// Shape legend: M rows, D d_model, V vocab.
#pragma once
#include <cstdint>

#include "pipeline/model/transformer.hpp"

namespace saepipe {

// logits [M, V] = x [M, D] @ W_U [D, V] (W_U = m.unembedding()^T), then c tanh(logits / c)
// with c = m.final_logit_softcap() > 0. Memory: the output only.
void unembed(const TransformerModel& m, const float* x, int64_t M, float* logits);

}  // namespace saepipe
