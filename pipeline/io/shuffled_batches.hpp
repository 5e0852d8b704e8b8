// The deterministic global shuffle that train reads through. The training tokens
// [0, T) are cut into blocks; each epoch permutes the blocks (seed, epoch), groups them into
// windows of about `window_tokens`, and permutes the tokens inside each window
// (seed, epoch, window). The concatenation of the windows is the global token stream, and
// global batch b is stream[b*B, (b+1)*B). Every rank computes the same stream and reads only
// its slice [b*B + lo, b*B + hi) — so the batches, and the trained weights, do not depend
// on the number of ranks.
//
// A window is loaded whole: its tokens sorted are contiguous runs of whole blocks, read as whole
// chunks (a block, kShuffleBlockTokens rows, is whole chunks of a store written by harvest), and
// the in-window permutation is applied when rows are gathered into batches. Memory: one window
// of rows in the store's dtype (window_tokens x D x 2 or 4 bytes) for read(); BatchPrefetcher
// holds two.
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/io/activation_store.hpp"

namespace saepipe {

// One window of the stream: what to load and how its rows map to stream positions.
struct StreamWindow {
  int64_t index = -1;          // epoch * windows per epoch + window
  int64_t begin = 0, end = 0;  // the stream positions it covers
  std::vector<RowRun> runs;    // its tokens, ascending, as contiguous runs
  std::vector<int32_t> order;  // order[k]: the row of the load (of `runs`) at stream position begin + k
};

class ShuffledBatches {
 public:
  ShuffledBatches(StoreReader& reader, int64_t train_tokens, int64_t window_tokens, uint64_t seed);

  // Rows of stream positions [first, first + n) into out [n,D]; positions past the end of an
  // epoch continue into the next epoch. Calls must ask for non-decreasing `first`.
  void read(int64_t first, int64_t n, float* out);

  int64_t train_tokens() const { return train_tokens_; }
  StoreReader& reader() { return reader_; }

  // Token index (into the store) of stream position `pos`; for tests.
  int64_t token_at(int64_t pos);

  // The window holding stream position `pos`, and the plan of a window by index.
  int64_t window_at(int64_t pos);
  void plan(int64_t index, StreamWindow& out);

 private:
  void permute_epoch(int64_t epoch);

  StoreReader& reader_;
  int64_t train_tokens_, block_, n_blocks_, blocks_per_window_, n_windows_;
  uint64_t seed_;
  // The epoch whose block permutation and window offsets are at hand.
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> epoch_perm_;
  std::vector<int64_t> window_start_;  // stream offset of each window within the epoch
  // read()'s window: its plan and rows.
  StreamWindow cur_;
  RawRows cur_rows_;
  bool cur_loaded_ = false;
};

}  // namespace saepipe
