#include "pipeline/stats/example_selection.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "pipeline/core/errors.hpp"

namespace saepipe {

ExampleSelection::ExampleSelection(int64_t groups, int64_t slots, int64_t context_before, int64_t context_after)
    : groups_(groups), slots_(slots), before_(context_before), after_(context_after),
      C_(context_before + 1 + context_after) {
  SAE_ASSERT(groups >= 0 && slots >= 1, "ExampleSelection: bad shape");
  const size_t n = size_t(groups * slots);
  prio_.assign(n, 0.0);
  row_.assign(n, -1);
  act_.assign(n, 0.0f);
  ctx_tokens_.assign(n * size_t(C_), -1);
  ctx_acts_.assign(n * size_t(C_), 0.0f);
  count_.assign(size_t(groups), 0);
  worst_.assign(size_t(groups), 0);
}

void ExampleSelection::update_worst(int64_t group) {
  const int64_t g = group * slots_;
  int32_t w = 0;
  for (int32_t s = 1; s < slots_; ++s)
    if (better(prio_[size_t(g + w)], row_[size_t(g + w)], prio_[size_t(g + s)], row_[size_t(g + s)])) w = s;
  worst_[size_t(group)] = w;
}

ExampleSelection ExampleSelection::from_kept(int64_t groups, int64_t slots, int64_t context_before,
                                             int64_t context_after, std::vector<double> prio, std::vector<int64_t> row,
                                             std::vector<float> act, std::vector<int32_t> ctx_tokens,
                                             std::vector<float> ctx_acts, const std::vector<int32_t>& count) {
  ExampleSelection s(groups, slots, context_before, context_after);
  const size_t n = size_t(groups * slots);
  SAE_ASSERT(prio.size() == n && row.size() == n && act.size() == n && count.size() == size_t(groups) &&
                 ctx_tokens.size() == n * size_t(s.C_) && ctx_acts.size() == n * size_t(s.C_),
             "ExampleSelection::from_kept: sizes");
  s.prio_ = std::move(prio);
  s.row_ = std::move(row);
  s.act_ = std::move(act);
  s.ctx_tokens_ = std::move(ctx_tokens);
  s.ctx_acts_ = std::move(ctx_acts);
  for (int64_t g = 0; g < groups; ++g) {
    s.count_[size_t(g)] = count[size_t(g)];
    for (int64_t k = count[size_t(g)]; k < slots; ++k) {  // empty slots, as the constructor leaves them
      const size_t i = size_t(g * slots + k);
      s.prio_[i] = 0.0;
      s.row_[i] = -1;
      s.act_[i] = 0.0f;
      std::fill_n(s.ctx_tokens_.begin() + int64_t(i) * s.C_, s.C_, -1);
      std::fill_n(s.ctx_acts_.begin() + int64_t(i) * s.C_, s.C_, 0.0f);
    }
    if (s.count_[size_t(g)] == slots) s.update_worst(g);
  }
  return s;
}

namespace {
template <class T>
std::vector<T> gather(const MpiEnv& env, const std::vector<T>& local) {
  std::vector<char> bytes = env.allgather_bytes(local.data(), int64_t(local.size() * sizeof(T)));
  std::vector<T> out(local.size() * size_t(env.size()));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}
}  // namespace

ExampleSet ExampleSelection::merge(const MpiEnv& env, int64_t groups_per_feature) const {
  // 1. Every rank learns every rank's keys and picks the same winners.
  const std::vector<double> all_prio = gather(env, prio_);
  const std::vector<int64_t> all_row = gather(env, row_);
  const std::vector<float> all_act = gather(env, act_);
  const size_t per_rank = prio_.size();
  ExampleSet out;
  out.per_feature = groups_per_feature * slots_;
  out.row.assign(per_rank, -1);
  out.activation.assign(per_rank, 0.0f);
  std::vector<size_t> cand;
  for (int64_t g = 0; g < groups_; ++g) {
    cand.clear();
    for (int r = 0; r < env.size(); ++r)
      for (int64_t s = 0; s < slots_; ++s) {
        const size_t i = size_t(r) * per_rank + size_t(g * slots_ + s);
        if (all_row[i] >= 0) cand.push_back(i);
      }
    std::sort(cand.begin(), cand.end(), [&](size_t a, size_t b) {
      return better(all_prio[a], all_row[a], all_prio[b], all_row[b]);
    });
    for (size_t j = 0; j < cand.size() && int64_t(j) < slots_; ++j) {
      out.row[size_t(g * slots_) + j] = all_row[cand[j]];
      out.activation[size_t(g * slots_) + j] = all_act[cand[j]];
    }
  }
  // 2. Contexts: each winner's row belongs to exactly one rank, which holds it in its own
  // selection; that rank contributes the context and the others zeros, summed.
  out.ctx_tokens.assign(ctx_tokens_.size(), 0);
  out.ctx_acts.assign(ctx_acts_.size(), 0.0f);
  for (int64_t g = 0; g < groups_; ++g)
    for (int64_t j = 0; j < slots_; ++j) {
      const int64_t row = out.row[size_t(g * slots_ + j)];
      if (row < 0) continue;
      for (int64_t s = 0; s < slots_; ++s) {
        const size_t i = size_t(g * slots_ + s);
        if (row_[i] != row) continue;
        std::copy_n(ctx_tokens_.begin() + int64_t(i) * C_, C_, out.ctx_tokens.begin() + (g * slots_ + j) * C_);
        std::copy_n(ctx_acts_.begin() + int64_t(i) * C_, C_, out.ctx_acts.begin() + (g * slots_ + j) * C_);
      }
    }
  env.allreduce_sum(out.ctx_tokens.data(), int64_t(out.ctx_tokens.size()));
  env.allreduce_sum(out.ctx_acts.data(), int64_t(out.ctx_acts.size()));
  for (size_t i = 0; i < out.row.size(); ++i)
    if (out.row[i] < 0) std::fill_n(out.ctx_tokens.begin() + int64_t(i) * C_, C_, -1);
  return out;
}

}  // namespace saepipe
