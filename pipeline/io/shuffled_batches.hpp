// The deterministic global shuffle that train reads through. The training tokens
// [0, T) are cut into blocks; each epoch permutes the blocks (seed, epoch), groups them into
// windows of about `window_tokens`, and permutes the tokens inside each window
// (seed, epoch, window). The concatenation of the windows is the global token stream, and
// global batch b is stream[b*B, (b+1)*B). Every rank computes the same stream and reads only
// its slice [b*B + lo, b*B + hi) — so the batches, and the trained weights, do not depend
// on the number of ranks. Memory: one window of rows (window_tokens x D floats).
#pragma once
#include <cstdint>
#include <vector>

namespace saepipe {

class StoreReader;

class ShuffledBatches {
 public:
  ShuffledBatches(StoreReader& reader, int64_t train_tokens, int64_t window_tokens, uint64_t seed);

  // Rows of stream positions [first, first + n) into out [n,D]; positions past the end of an
  // epoch continue into the next epoch. Calls must ask for non-decreasing `first`.
  void read(int64_t first, int64_t n, float* out);

  int64_t train_tokens() const { return train_tokens_; }

  // Token index (into the store) of stream position `pos`; for tests.
  int64_t token_at(int64_t pos);

 private:
  void load_window(int64_t epoch, int64_t window);
  std::vector<int64_t> window_tokens_of(int64_t epoch, int64_t window) const;

  StoreReader& reader_;
  int64_t train_tokens_, block_, n_blocks_, blocks_per_window_, n_windows_;
  uint64_t seed_;
  int64_t d_;
  // The window in memory: its permuted token order and the rows in that order.
  int64_t cur_epoch_ = -1, cur_window_ = -1, cur_start_ = 0;  // cur_start_: stream position
  std::vector<int64_t> cur_order_;
  std::vector<float> cur_rows_;
  std::vector<int64_t> epoch_perm_;
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> window_start_;  // stream offset of each window within an epoch
};

}  // namespace saepipe
