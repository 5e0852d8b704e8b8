// The model activation source: a transformer (pipeline/model) run over a token file. Sequence
// i is [BOS] + tokens [i*(T-1), (i+1)*(T-1)) with prepend_bos, else tokens [i*T, (i+1)*T);
// it depends only on i, so the store does not depend on the number of ranks.
//
// Shape legend: B sequences per forward pass, T context, R rows stored per sequence
// (T, or T-1 with exclude_bos), D d_model.
#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/model/gguf_model.hpp"
#include "pipeline/model/token_source.hpp"
#include "pipeline/model/transformer.hpp"
#include "pipeline/stages/activation_source.hpp"
#include "pipeline/stages/backend.hpp"

namespace saepipe {

namespace {

class ModelSource final : public ActivationSource {
 public:
  ModelSource(const Job& job, const Backend& backend) : h_(job.harvest) {
    SAE_ASSERT(h_.prepend_bos.has_value(), "harvest.prepend_bos = \"auto\" is resolved before the source opens");
    prepend_bos_ = *h_.prepend_bos;
    model_ = backend.load_transformer(h_.model, h_.hooks);
    for (const std::string& n : h_.hooks) hooks_.push_back(model_->hook(n));
    // "auto": the id the tokenizer prepends; true: config.json's bos_token_id.
    bos_ = h_.bos_token >= 0 ? h_.bos_token : model_->bos_token();
    if (prepend_bos_ && bos_ < 0)
      user_error(job.path + ": harvest.prepend_bos: the model has no BOS token (" + h_.model +
                 "/config.json bos_token_id is null); set harvest.prepend_bos = false");
    if (prepend_bos_ && bos_ >= model_->vocab_size())
      user_error(h_.model + ": the BOS token " + std::to_string(bos_) + " its tokenizer prepends is outside the vocabulary [0, " +
                 std::to_string(model_->vocab_size()) + ")");
    if (h_.context > model_->n_positions())
      user_error(job.path + ": harvest.context: " + std::to_string(h_.context) + " exceeds the model's n_positions " +
                 std::to_string(model_->n_positions()) + " (" + h_.model + (is_gguf_model_path(h_.model) ? "" : "/config.json") + ")");
    TokenInputOptions o;
    o.path = h_.tokens;
    o.format = h_.token_format;
    o.dataset = h_.tokens_dataset;
    o.model_dir = h_.model;
    o.eos_token = model_->eos_token();
    tokens_ = open_token_source(o);
    const int64_t need = (h_.n_tokens / h_.context) * input_per_sequence();
    if (tokens_->size() < need)
      user_error(h_.tokens + ": holds " + std::to_string(tokens_->size()) + " tokens; harvest.n_tokens = " +
                 std::to_string(h_.n_tokens) + " with context " + std::to_string(h_.context) +
                 (prepend_bos_ ? " and a BOS per sequence" : "") + " needs " + std::to_string(need));
  }

  int64_t d_model() const override { return model_->d_model(); }
  int64_t rows_per_sequence() const override { return h_.context - (h_.exclude_bos ? 1 : 0); }

  nlohmann::json description() const override {
    return {{"type", "model"},
            {"model", h_.model},
            {"family", model_->family()},
            {"config", nlohmann::json::parse(model_->describe())},
            {"weights", model_->weights_identity()},
            {"tokens", h_.tokens},
            {"token_format", tokens_->format()},
            {"tokens_available", tokens_->size()},
            {"tokens_dataset", tokens_->format() == "hdf5" ? h_.tokens_dataset : ""},
            {"prepend_bos", prepend_bos_},
            {"bos_token", prepend_bos_ ? bos_ : model_->bos_token()},
            {"exclude_bos", h_.exclude_bos},
            {"batch_sequences", h_.batch_sequences},  // the batch can change BLAS rounding
            {"d_model", model_->d_model()},
            {"generator", "saepipe.model.v1"}};
  }

  void check_sequences(int64_t first_seq, int64_t n_seq) const override {
    const int64_t P = input_per_sequence(), first = first_seq * P, count = n_seq * P;
    std::vector<int32_t> buf(size_t(std::min<int64_t>(count, 1 << 20)));
    for (int64_t a = first; a < first + count; a += int64_t(buf.size())) {
      const int64_t n = std::min<int64_t>(int64_t(buf.size()), first + count - a);
      tokens_->read(a, n, buf.data());
      for (int64_t i = 0; i < n; ++i)
        if (buf[i] < 0 || buf[i] >= model_->vocab_size())
          user_error(h_.tokens + ": token " + std::to_string(buf[i]) + " at index " + std::to_string(a + i) +
                     " is outside the model's vocabulary [0, " + std::to_string(model_->vocab_size()) + ")");
    }
  }

  void fill(int64_t first_seq, int64_t n_seq, ShardData& data) const override {
    const int64_t T = h_.context, R = rows_per_sequence(), D = d_model(), skip = T - R;
    const int64_t n_rows = n_seq * R;
    data.first_token = first_seq * R;
    data.n_tokens = n_rows;
    data.activations.resize(hooks_.size());  // harvest reuses `data`: resizing keeps its memory
    for (std::vector<float>& a : data.activations) a.resize(size_t(n_rows * D));
    data.tokens.resize(size_t(n_rows));
    data.sequence.resize(size_t(n_rows));
    data.position.resize(size_t(n_rows));

    const int64_t Bmax = std::min(h_.batch_sequences, n_seq);
    const int64_t n_batches = (n_seq + Bmax - 1) / Bmax;
    auto fill_batch = [&](int64_t i, int32_t* tok) {  // tok [B,T]
      const int64_t s0 = i * Bmax, B = std::min(Bmax, n_seq - s0);
      for (int64_t b = 0; b < B; ++b) read_sequence(first_seq + s0 + b, tok + b * T);
      return B;
    };
    std::vector<int32_t> tok(size_t(Bmax * T));  // the batch's tokens again, for the rows
    auto use_batch = [&](int64_t i, const std::vector<const float*>& act) {  // act[h] [B*T,D]
      const int64_t s0 = i * Bmax, B = std::min(Bmax, n_seq - s0);
      for (int64_t b = 0; b < B; ++b) {
        read_sequence(first_seq + s0 + b, tok.data() + b * T);
        const int64_t row0 = (s0 + b) * R;  // first row of this sequence in the shard
        for (size_t h = 0; h < hooks_.size(); ++h)
          std::memcpy(data.activations[h].data() + row0 * D, act[h] + (b * T + skip) * D, size_t(R * D) * sizeof(float));
        for (int64_t r = 0; r < R; ++r) {
          data.tokens[size_t(row0 + r)] = tok[size_t(b * T + skip + r)];
          data.sequence[size_t(row0 + r)] = first_seq + s0 + b;
          data.position[size_t(row0 + r)] = int32_t(skip + r);
        }
      }
    };
    model_->forward_batches(n_batches, Bmax, T, hooks_, fill_batch, use_batch);
  }

 private:
  int64_t input_per_sequence() const { return h_.context - (prepend_bos_ ? 1 : 0); }

  // out[T]: the tokens of global sequence i.
  void read_sequence(int64_t i, int32_t* out) const {
    const int64_t P = input_per_sequence();
    int64_t k = 0;
    if (prepend_bos_) out[k++] = int32_t(bos_);
    tokens_->read(i * P, P, out + k);
  }

  HarvestConfig h_;
  bool prepend_bos_ = false;
  int64_t bos_ = -1;  // the id prepended
  SingleThreadedBlas blas_threads_;  // for as long as the source lives (see gpt2.cpp)
  std::unique_ptr<TransformerModel> model_;
  std::vector<HookPoint> hooks_;
  std::unique_ptr<TokenSource> tokens_;
};

}  // namespace

std::unique_ptr<ActivationSource> make_model_source(const Job& job, const Backend& backend) {
  return std::make_unique<ModelSource>(job, backend);
}

}  // namespace saepipe
