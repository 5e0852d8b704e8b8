// The synthetic activation source: the toy model of superposition (pipeline/model/synthetic.hpp),
// one store hook per harvest.hooks entry (the first from the true features, later ones the same
// codes through their own dictionaries). Token i depends only on (seed, i), so the store does
// not depend on the number of ranks.
#include "pipeline/core/errors.hpp"
#include "pipeline/core/job.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/model/synthetic.hpp"
#include "pipeline/stages/activation_source.hpp"

namespace saepipe {

namespace {

class SyntheticSource final : public ActivationSource {
 public:
  explicit SyntheticSource(const Job& job)
      : h_(job.harvest), model_(job.harvest.synthetic, int64_t(job.harvest.hooks.size())) {}
  int64_t d_model() const override { return model_.d_model(); }
  int64_t rows_per_sequence() const override { return h_.context; }
  nlohmann::json description() const override {
    // Unchanged since version 1 for independent features, so earlier stores stay valid.
    nlohmann::json d = {{"type", h_.source},
                        {"d_model", h_.synthetic.d_model},
                        {"n_features", h_.synthetic.n_features},
                        {"mean_active", h_.synthetic.mean_active},
                        {"decay", h_.synthetic.decay},
                        {"seed", h_.synthetic.seed},
                        {"generator", "saepipe.synthetic.v1"}};
    const SyntheticConfig& c = h_.synthetic;
    if (c.correlation > 0) d["correlation"] = c.correlation;
    // Hierarchy and later hooks: recorded only when used, so such a store names its generator.
    if (c.children > 0) d["children"] = c.children, d["child_probability"] = c.child_probability;
    if (c.children > 0 && c.child_coefficient != "own") d["child_coefficient"] = c.child_coefficient;
    if (h_.hooks.size() > 1) {
      d["hook_similarity"] = c.hook_similarity;
      d["hook_noise"] = c.hook_noise;
      d["hook_linear"] = c.hook_linear;
      d["hook_absent"] = c.hook_absent;
    }
    if (c.children > 0 || h_.hooks.size() > 1) d["generator"] = "saepipe.synthetic.v2";
    return d;
  }
  void fill(int64_t first_seq, int64_t n_seq, ShardData& data) const override {
    const int64_t first = first_seq * h_.context, n = n_seq * h_.context, D = d_model();
    data.first_token = first;
    data.n_tokens = n;
    data.activations.resize(h_.hooks.size());  // harvest reuses `data`: resizing keeps its memory
    for (auto& a : data.activations) a.resize(size_t(n * D));
    data.tokens.resize(size_t(n));
    data.sequence.resize(size_t(n));
    data.position.resize(size_t(n));
    std::vector<float*> out;
    for (auto& a : data.activations) out.push_back(a.data());
    model_.generate(first, n, out, data.tokens.data());
    for (int64_t r = 0; r < n; ++r) {
      data.sequence[r] = (first + r) / h_.context;
      data.position[r] = int32_t((first + r) % h_.context);
    }
  }
  void finish_store(const std::string& dir) const override {
    GroundTruth t;
    t.n_features = model_.n_features();
    t.d_model = model_.d_model();
    for (int64_t l = 0; l < model_.n_hooks(); ++l) {
      t.features.push_back(model_.features(l));
      t.linear.push_back(model_.linear(l));
    }
    if (h_.hooks.size() > 1) t.hooks = h_.hooks;
    t.probability = model_.probabilities();
    if (model_.hierarchical()) t.parent = model_.parents();
    write_ground_truth(dir, t);
  }

 private:
  HarvestConfig h_;
  SyntheticModel model_;  // validates the settings
};

}  // namespace

std::unique_ptr<ActivationSource> make_synthetic_source(const Job& job) { return std::make_unique<SyntheticSource>(job); }

std::unique_ptr<ActivationSource> make_activation_source(const Job& job, const Backend& backend) {
  if (job.harvest.source == "synthetic") return make_synthetic_source(job);
  if (job.harvest.source == "model") return make_model_source(job, backend);
  user_error(job.path + ": harvest.source: unknown source \"" + job.harvest.source + "\"");
}

}  // namespace saepipe
