#include "pipeline/io/shuffled_batches.hpp"

#include <algorithm>
#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/core/counter_rng.hpp"

namespace saepipe {

namespace {
constexpr int64_t kBlockTokens = 1024;  // contiguous rows read together
constexpr uint64_t kBlockStream = 11, kTokenStream = 12;

// Fisher-Yates driven by the counter hash: the same permutation on every rank and platform.
void permute(std::vector<int64_t>& v, uint64_t seed, uint64_t stream, uint64_t key) {
  for (int64_t i = int64_t(v.size()) - 1; i > 0; --i) {
    uint64_t h = counter_hash(seed, stream, key, uint64_t(i));
    int64_t j = int64_t(h % uint64_t(i + 1));
    std::swap(v[i], v[j]);
  }
}
}  // namespace

ShuffledBatches::ShuffledBatches(StoreReader& reader, int64_t train_tokens, int64_t window_tokens,
                                 uint64_t seed)
    : reader_(reader), train_tokens_(train_tokens), seed_(seed), d_(reader.d_model()) {
  SAE_ASSERT(train_tokens > 0, "no training tokens");
  block_ = std::min(kBlockTokens, train_tokens);
  n_blocks_ = (train_tokens + block_ - 1) / block_;
  blocks_per_window_ = std::clamp<int64_t>(window_tokens / block_, 1, n_blocks_);
  n_windows_ = (n_blocks_ + blocks_per_window_ - 1) / blocks_per_window_;
}

std::vector<int64_t> ShuffledBatches::window_tokens_of(int64_t epoch, int64_t window) const {
  std::vector<int64_t> tokens;
  int64_t b0 = window * blocks_per_window_, b1 = std::min(n_blocks_, b0 + blocks_per_window_);
  for (int64_t b = b0; b < b1; ++b) {
    int64_t block = epoch_perm_[b];
    int64_t t0 = block * block_, t1 = std::min(train_tokens_, t0 + block_);
    for (int64_t t = t0; t < t1; ++t) tokens.push_back(t);
  }
  permute(tokens, seed_, kTokenStream, uint64_t(epoch) * 1000003ull + uint64_t(window));
  return tokens;
}

void ShuffledBatches::load_window(int64_t epoch, int64_t window) {
  if (perm_epoch_ != epoch) {
    epoch_perm_.resize(n_blocks_);
    for (int64_t b = 0; b < n_blocks_; ++b) epoch_perm_[b] = b;
    permute(epoch_perm_, seed_, kBlockStream, uint64_t(epoch));
    perm_epoch_ = epoch;
    window_start_.assign(n_windows_ + 1, 0);
    for (int64_t w = 0; w < n_windows_; ++w) {
      int64_t b0 = w * blocks_per_window_, b1 = std::min(n_blocks_, b0 + blocks_per_window_);
      int64_t n = 0;
      for (int64_t b = b0; b < b1; ++b) n += std::min(block_, train_tokens_ - epoch_perm_[b] * block_);
      window_start_[w + 1] = window_start_[w] + n;
    }
  }
  cur_order_ = window_tokens_of(epoch, window);
  cur_epoch_ = epoch;
  cur_window_ = window;
  cur_start_ = epoch * train_tokens_ + window_start_[window];
  cur_rows_.clear();
}

int64_t ShuffledBatches::token_at(int64_t pos) {
  int64_t epoch = pos / train_tokens_, in_epoch = pos % train_tokens_;
  if (epoch != cur_epoch_ || in_epoch < window_start_[cur_window_] || in_epoch >= window_start_[cur_window_ + 1]) {
    if (epoch != perm_epoch_) load_window(epoch, 0);
    int64_t w = int64_t(std::upper_bound(window_start_.begin(), window_start_.end(), in_epoch) - window_start_.begin()) - 1;
    load_window(epoch, w);
  }
  return cur_order_[in_epoch - window_start_[cur_window_]];
}

void ShuffledBatches::read(int64_t first, int64_t n, float* out) {
  for (int64_t i = 0; i < n;) {
    int64_t pos = first + i;
    token_at(pos);  // makes the window holding `pos` current
    // Rows of the whole window are read once, in sorted order (contiguous runs), then
    // permuted in memory.
    if (cur_rows_.empty()) {
      std::vector<int64_t> sorted = cur_order_;
      std::sort(sorted.begin(), sorted.end());
      std::vector<float> by_token(sorted.size() * size_t(d_));
      size_t r = 0;
      while (r < sorted.size()) {
        size_t e = r + 1;
        while (e < sorted.size() && sorted[e] == sorted[e - 1] + 1) ++e;
        reader_.read_rows(sorted[r], int64_t(e - r), by_token.data() + r * d_);
        r = e;
      }
      cur_rows_.resize(by_token.size());
      for (size_t k = 0; k < cur_order_.size(); ++k) {
        size_t src = size_t(std::lower_bound(sorted.begin(), sorted.end(), cur_order_[k]) - sorted.begin());
        std::memcpy(cur_rows_.data() + k * d_, by_token.data() + src * d_, sizeof(float) * d_);
      }
    }
    int64_t offset = pos - cur_start_;
    int64_t take = std::min<int64_t>(n - i, int64_t(cur_order_.size()) - offset);
    std::memcpy(out + i * d_, cur_rows_.data() + offset * d_, sizeof(float) * size_t(take * d_));
    i += take;
  }
}

}  // namespace saepipe
