#include "pipeline/model/transformer.hpp"

#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/decoder.hpp"
#include "pipeline/model/gguf_model.hpp"

namespace saepipe {

namespace {
constexpr const char* kHookForms =
    "hook_embed, hook_pos_embed, blocks.L.hook_resid_pre, blocks.L.hook_resid_mid, blocks.L.hook_resid_post, "
    "blocks.L.hook_attn_out, blocks.L.hook_mlp_out, ln_final.hook_normalized";
}

HookPoint parse_hook(const std::string& name, int64_t n_layers) {
  HookPoint h;
  h.name = name;
  if (name == "hook_embed") { h.kind = HookKind::Embed; return h; }
  if (name == "hook_pos_embed") { h.kind = HookKind::PosEmbed; return h; }
  if (name == "ln_final.hook_normalized") { h.kind = HookKind::LnFinalNormalized; return h; }
  const std::string prefix = "blocks.";
  const size_t dot = name.find('.', prefix.size());
  if (name.rfind(prefix, 0) == 0 && dot != std::string::npos && dot > prefix.size() && dot - prefix.size() <= 6) {
    const std::string num = name.substr(prefix.size(), dot - prefix.size());
    const std::string rest = name.substr(dot + 1);
    bool digits = num.find_first_not_of("0123456789") == std::string::npos;
    const std::pair<const char*, HookKind> kinds[] = {
        {"hook_resid_pre", HookKind::ResidPre}, {"hook_resid_mid", HookKind::ResidMid},
        {"hook_resid_post", HookKind::ResidPost}, {"hook_attn_out", HookKind::AttnOut},
        {"hook_mlp_out", HookKind::MlpOut}};
    for (auto& [suffix, kind] : kinds) {
      if (digits && rest == suffix) {
        h.kind = kind;
        h.layer = std::stoll(num);
        if (h.layer >= n_layers)
          user_error("harvest.hooks: \"" + name + "\": layer " + num + " does not exist (the model has " +
                     std::to_string(n_layers) + " layers, 0.." + std::to_string(n_layers - 1) + ")");
        return h;
      }
    }
  }
  user_error("harvest.hooks: unknown hook \"" + name + "\" (known: " + kHookForms + ")");
}

int64_t layers_needed(const std::vector<HookPoint>& hooks, int64_t n_layers) {
  int64_t n = 0;
  for (const HookPoint& h : hooks) {
    if (h.kind == HookKind::LnFinalNormalized) n = n_layers;
    else if (h.layer >= 0) n = std::max(n, h.layer + 1);
  }
  return n;
}

void TransformerModel::forward_batches(int64_t n_batches, int64_t max_batch, int64_t T,
                                       const std::vector<HookPoint>& hooks, const BatchTokens& fill,
                                       const BatchActivations& use) const {
  std::vector<int32_t> tok(size_t(max_batch * T));                                              // [B,T]
  std::vector<std::vector<float>> act(hooks.size(), std::vector<float>(size_t(max_batch * T * d_model())));  // [B*T,D]
  std::vector<float*> out(hooks.size());
  std::vector<const float*> view(hooks.size());
  for (size_t h = 0; h < hooks.size(); ++h) view[h] = out[h] = act[h].data();
  for (int64_t i = 0; i < n_batches; ++i) {
    const int64_t B = fill(i, tok.data());
    forward(tok.data(), B, T, hooks, out);
    use(i, view);
  }
}

namespace {
// The config and the weights of a Hugging Face directory or of a GGUF file.
std::pair<DecoderConfig, std::shared_ptr<const WeightSource>> open_model(const std::string& model) {
  if (is_gguf_model_path(model)) {
    auto file = std::make_shared<const GgufFile>(model);
    DecoderConfig cfg = decoder_config_from_gguf(*file);
    auto weights = open_gguf_weights(file, cfg);
    return {std::move(cfg), std::move(weights)};
  }
  DecoderConfig cfg = read_decoder_config(model);
  auto weights = open_hf_weights(model, cfg);
  return {std::move(cfg), std::move(weights)};
}
}  // namespace

std::unique_ptr<DecoderModel> load_decoder(const std::string& model, const std::vector<std::string>& hook_names) {
  auto [cfg, weights] = open_model(model);
  std::vector<HookPoint> hooks;
  for (const std::string& n : hook_names) hooks.push_back(decoder_hook(cfg, n));
  return std::make_unique<DecoderModel>(cfg, std::move(weights), layers_needed(hooks, cfg.n_layers), false);
}

std::unique_ptr<DecoderModel> load_decoder_full(const std::string& model) {
  auto [cfg, weights] = open_model(model);
  return std::make_unique<DecoderModel>(cfg, std::move(weights), cfg.n_layers, true);
}

std::unique_ptr<TransformerModel> load_transformer(const std::string& model_dir,
                                                   const std::vector<std::string>& hook_names) {
  return load_decoder(model_dir, hook_names);
}

std::unique_ptr<TransformerModel> load_transformer_full(const std::string& model_dir) {
  return load_decoder_full(model_dir);
}

}  // namespace saepipe
