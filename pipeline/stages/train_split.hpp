// The split of a store into training tokens and held-out tokens: the last
// ceil(heldout_fraction * sequences) whole sequences are held out for stats and never
// trained on. Train records the split in sae.h5 so stats finds it again.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "pipeline/io/activation_store.hpp"

namespace saepipe {

struct TrainSplit {
  int64_t train_tokens = 0;    // tokens [0, train_tokens) are for training
  int64_t heldout_tokens = 0;  // tokens [train_tokens, n_tokens) are held out
};

inline TrainSplit train_split(const StoreManifest& m, double heldout_fraction) {
  const int64_t context = std::max<int64_t>(1, m.context);
  const int64_t n_seq = m.n_tokens / context;
  int64_t held_seq = heldout_fraction > 0 ? int64_t(std::ceil(heldout_fraction * double(n_seq))) : 0;
  held_seq = std::min(held_seq, n_seq);
  TrainSplit s;
  s.train_tokens = (n_seq - held_seq) * context;
  s.heldout_tokens = m.n_tokens - s.train_tokens;
  return s;
}

}  // namespace saepipe
