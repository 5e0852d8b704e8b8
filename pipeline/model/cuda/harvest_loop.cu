// HarvestLoop (harvest_loop.hpp): pinned host slots, a compute stream and a copy stream.
#include "pipeline/model/cuda/harvest_loop.hpp"

#include <cstring>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"

namespace saepipe::cuda {


struct HarvestLoop::Slot {
  int32_t* tokens_host = nullptr;  // pinned [max_B*T]
  DeviceBuffer<int32_t> tokens_dev;
  std::vector<DeviceBuffer<float>> dev;  // per hook [max_B*T*C]
  std::vector<float*> host;              // per hook, pinned [max_B*T*C]
  cudaEvent_t start = nullptr, computed = nullptr, copied = nullptr;
  bool pending = false;
};

HarvestLoop::HarvestLoop(DevicePass pass, int64_t d_model, int64_t vocab_size, std::vector<HookPoint> hooks,
                         int64_t max_batch, int64_t T, int slots)
    : pass_(std::move(pass)), D_(d_model), V_(vocab_size), hooks_(std::move(hooks)), max_batch_(max_batch), T_(T) {
  SAE_ASSERT(slots >= 1 && max_batch >= 1 && T >= 1, "HarvestLoop: bad shape");
  SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
  SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  const int64_t N = max_batch * T, C = D_;
  for (int i = 0; i < slots; ++i) {
    auto s = std::make_unique<Slot>();
    SAE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s->tokens_host), size_t(N) * sizeof(int32_t)));
    s->tokens_dev.resize(N);
    s->dev.resize(hooks_.size());
    s->host.assign(hooks_.size(), nullptr);
    for (size_t h = 0; h < hooks_.size(); ++h) {
      s->dev[h].resize(N * C);
      SAE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s->host[h]), size_t(N * C) * sizeof(float)));
    }
    SAE_CUDA_CHECK(cudaEventCreate(&s->start));
    SAE_CUDA_CHECK(cudaEventCreate(&s->computed));
    SAE_CUDA_CHECK(cudaEventCreateWithFlags(&s->copied, cudaEventDisableTiming));
    slot_.push_back(std::move(s));
  }
}

HarvestLoop::~HarvestLoop() {
  if (compute_) cudaStreamSynchronize(compute_);
  if (copy_) cudaStreamSynchronize(copy_);
  for (auto& s : slot_) {
    if (s->tokens_host) cudaFreeHost(s->tokens_host);
    for (float* p : s->host)
      if (p) cudaFreeHost(p);
    if (s->start) cudaEventDestroy(s->start);
    if (s->computed) cudaEventDestroy(s->computed);
    if (s->copied) cudaEventDestroy(s->copied);
  }
  if (compute_) cudaStreamDestroy(compute_);
  if (copy_) cudaStreamDestroy(copy_);
}

void HarvestLoop::submit(int slot, const int32_t* tokens, int64_t B) {
  SAE_ASSERT(slot >= 0 && slot < slots(), "HarvestLoop: no such slot");
  SAE_ASSERT(B >= 1 && B <= max_batch_, "HarvestLoop: batch larger than max_batch");
  Slot& s = *slot_[size_t(slot)];
  SAE_ASSERT(!s.pending, "HarvestLoop: slot submitted again before wait()");
  const int64_t N = B * T_, C = D_;
  for (int64_t i = 0; i < N; ++i) SAE_ASSERT(tokens[i] >= 0 && tokens[i] < V_, "token id out of range");
  std::memcpy(s.tokens_host, tokens, size_t(N) * sizeof(int32_t));
  SAE_CUDA_CHECK(cudaEventRecord(s.start, compute_));
  SAE_CUDA_CHECK(cudaMemcpyAsync(s.tokens_dev.data(), s.tokens_host, size_t(N) * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, compute_));
  std::vector<float*> dev(hooks_.size());
  for (size_t h = 0; h < hooks_.size(); ++h) dev[h] = s.dev[h].data();
  pass_(s.tokens_dev.data(), B, T_, hooks_, dev, compute_);
  SAE_CUDA_CHECK(cudaEventRecord(s.computed, compute_));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(copy_, s.computed, 0));
  for (size_t h = 0; h < hooks_.size(); ++h)
    SAE_CUDA_CHECK(cudaMemcpyAsync(s.host[h], dev[h], size_t(N * C) * sizeof(float), cudaMemcpyDeviceToHost, copy_));
  SAE_CUDA_CHECK(cudaEventRecord(s.copied, copy_));
  s.pending = true;
}

const std::vector<float*>& HarvestLoop::wait(int slot) {
  SAE_ASSERT(slot >= 0 && slot < slots(), "HarvestLoop: no such slot");
  Slot& s = *slot_[size_t(slot)];
  SAE_ASSERT(s.pending, "HarvestLoop: wait() on a slot with nothing submitted");
  SAE_CUDA_CHECK(cudaEventSynchronize(s.copied));
  s.pending = false;
  return s.host;
}

double HarvestLoop::last_pass_seconds(int slot) const {
  const Slot& s = *slot_[size_t(slot)];
  float ms = 0;
  SAE_CUDA_CHECK(cudaEventElapsedTime(&ms, s.start, s.computed));
  return double(ms) / 1e3;
}

void forward_batches_overlapped(const DevicePass& pass, int64_t d_model, int64_t vocab_size, int64_t n_batches,
                                int64_t max_batch, int64_t T, const std::vector<HookPoint>& hooks,
                                const TransformerModel::BatchTokens& fill, const TransformerModel::BatchActivations& use) {
  if (n_batches <= 0) return;
  HarvestLoop h(pass, d_model, vocab_size, hooks, max_batch, T, 2);
  std::vector<int32_t> tok(size_t(max_batch * T));
  auto hand_back = [&](int64_t i) {
    const std::vector<float*>& out = h.wait(int(i % 2));
    use(i, std::vector<const float*>(out.begin(), out.end()));
  };
  for (int64_t i = 0; i < n_batches; ++i) {
    const int64_t B = fill(i, tok.data());
    h.submit(int(i % 2), tok.data(), B);  // returns at once: batch i computes while i-1 is used
    if (i > 0) hand_back(i - 1);
  }
  hand_back(n_batches - 1);
}

}  // namespace saepipe::cuda
