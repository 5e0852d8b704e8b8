#include "pipeline/stats/decoder_neighbours.hpp"

#include <algorithm>
#include <numeric>

#include "kernels/kernels.hpp"

namespace saepipe {

void decoder_neighbours(const float* W_dec, int64_t F, int64_t D, int64_t K, std::vector<int32_t>& index,
                        std::vector<float>& cosine) {
  index.assign(size_t(F * K), -1);
  cosine.assign(size_t(F * K), 0.0f);
  if (K == 0) return;
  std::vector<float> dec(W_dec, W_dec + F * D);
  cpu::normalize_rows(dec.data(), F, D);
  const int64_t kBlock = 256;
  std::vector<float> cos(size_t(std::min(kBlock, F) * F));
  for (int64_t r0 = 0; r0 < F; r0 += kBlock) {
    const int64_t nb = std::min(kBlock, F - r0);
    cpu::matmul(false, true, nb, F, D, 1.0f, dec.data() + r0 * D, D, dec.data(), D, 0.0f, cos.data(), F);
#pragma omp parallel
    {
      std::vector<int32_t> order(static_cast<size_t>(F));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t f = r0 + i;
        const float* c = cos.data() + i * F;
        std::iota(order.begin(), order.end(), 0);
        order.erase(order.begin() + f);  // not its own neighbour
        const int64_t k = std::min<int64_t>(K, F - 1);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int32_t a, int32_t b) { return c[a] > c[b] || (c[a] == c[b] && a < b); });
        for (int64_t j = 0; j < k; ++j) {
          index[size_t(f * K + j)] = order[size_t(j)];
          cosine[size_t(f * K + j)] = c[order[size_t(j)]];
        }
        order.resize(static_cast<size_t>(F));
      }
    }
  }
}

}  // namespace saepipe
