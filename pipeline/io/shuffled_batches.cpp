#include "pipeline/io/shuffled_batches.hpp"

#include <algorithm>
#include <numeric>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/counter_rng.hpp"

namespace saepipe {

namespace {
constexpr int64_t kBlockTokens = kShuffleBlockTokens;  // contiguous rows read together
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
    : reader_(reader), train_tokens_(train_tokens), seed_(seed) {
  SAE_ASSERT(train_tokens > 0, "no training tokens");
  block_ = std::min(kBlockTokens, train_tokens);
  n_blocks_ = (train_tokens + block_ - 1) / block_;
  blocks_per_window_ = std::clamp<int64_t>(window_tokens / block_, 1, n_blocks_);
  n_windows_ = (n_blocks_ + blocks_per_window_ - 1) / blocks_per_window_;
}

void ShuffledBatches::permute_epoch(int64_t epoch) {
  if (perm_epoch_ == epoch) return;
  epoch_perm_.resize(size_t(n_blocks_));
  std::iota(epoch_perm_.begin(), epoch_perm_.end(), int64_t(0));
  permute(epoch_perm_, seed_, kBlockStream, uint64_t(epoch));
  perm_epoch_ = epoch;
  window_start_.assign(size_t(n_windows_ + 1), 0);
  for (int64_t w = 0; w < n_windows_; ++w) {
    int64_t b0 = w * blocks_per_window_, b1 = std::min(n_blocks_, b0 + blocks_per_window_);
    int64_t n = 0;
    for (int64_t b = b0; b < b1; ++b) n += std::min(block_, train_tokens_ - epoch_perm_[b] * block_);
    window_start_[w + 1] = window_start_[w] + n;
  }
}

int64_t ShuffledBatches::window_at(int64_t pos) {
  const int64_t epoch = pos / train_tokens_, in_epoch = pos % train_tokens_;
  permute_epoch(epoch);
  const int64_t w = int64_t(std::upper_bound(window_start_.begin(), window_start_.end(), in_epoch) - window_start_.begin()) - 1;
  return epoch * n_windows_ + w;
}

void ShuffledBatches::plan(int64_t index, StreamWindow& out) {
  const int64_t epoch = index / n_windows_, window = index % n_windows_;
  permute_epoch(epoch);
  // The window's tokens, then their in-window permutation (the stream order).
  std::vector<int64_t> tokens;
  tokens.reserve(size_t(window_start_[window + 1] - window_start_[window]));
  const int64_t b0 = window * blocks_per_window_, b1 = std::min(n_blocks_, b0 + blocks_per_window_);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t t0 = epoch_perm_[b] * block_, t1 = std::min(train_tokens_, t0 + block_);
    for (int64_t t = t0; t < t1; ++t) tokens.push_back(t);
  }
  permute(tokens, seed_, kTokenStream, uint64_t(epoch) * 1000003ull + uint64_t(window));
  out.index = index;
  out.begin = epoch * train_tokens_ + window_start_[window];
  out.end = epoch * train_tokens_ + window_start_[window + 1];
  // Rows are loaded in token order, and a window is whole blocks: the load row of token t is the
  // tokens of the window's blocks before t's block plus t's place in its block.
  std::vector<int64_t> blocks(epoch_perm_.begin() + b0, epoch_perm_.begin() + b1);
  std::sort(blocks.begin(), blocks.end());
  std::vector<int64_t> before(blocks.size());  // load rows before each sorted block
  out.runs.clear();
  int64_t rows = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const int64_t t0 = blocks[i] * block_, n = std::min(train_tokens_, t0 + block_) - t0;
    before[i] = rows;
    rows += n;
    if (!out.runs.empty() && out.runs.back().first + out.runs.back().count == t0)
      out.runs.back().count += n;
    else
      out.runs.push_back({t0, n});
  }
  out.order.resize(tokens.size());
  for (size_t k = 0; k < tokens.size(); ++k) {
    const int64_t block = tokens[k] / block_;
    const size_t i = size_t(std::lower_bound(blocks.begin(), blocks.end(), block) - blocks.begin());
    out.order[k] = int32_t(before[i] + tokens[k] - block * block_);
  }
}

int64_t ShuffledBatches::token_at(int64_t pos) {
  const int64_t w = window_at(pos);
  if (w != cur_.index) {
    plan(w, cur_);
    cur_loaded_ = false;
  }
  // The k-th load row is the k-th smallest token of the window.
  int64_t row = cur_.order[size_t(pos - cur_.begin)];
  for (const RowRun& r : cur_.runs) {
    if (row < r.count) return r.first + row;
    row -= r.count;
  }
  internal_error("token_at: row outside its window");
}

void ShuffledBatches::read(int64_t first, int64_t n, float* out) {
  const int64_t D = reader_.d_model();
  for (int64_t i = 0; i < n;) {
    const int64_t pos = first + i;
    const int64_t w = window_at(pos);
    if (w != cur_.index) {
      plan(w, cur_);
      cur_loaded_ = false;
    }
    if (!cur_loaded_) {
      reader_.load_rows(cur_.runs, cur_rows_);
      cur_loaded_ = true;
    }
    const int64_t take = std::min(n - i, cur_.end - pos);
    for (int64_t k = 0; k < take; ++k) cur_rows_.widen(cur_.order[size_t(pos - cur_.begin + k)], 1, 1.0f, out + (i + k) * D);
    i += take;
  }
}

}  // namespace saepipe
