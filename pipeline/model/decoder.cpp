// Shape legend: see decoder.hpp.
#include "pipeline/model/decoder.hpp"

#include <algorithm>
#include <cstring>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/decoder_ops.hpp"

namespace saepipe {

namespace ops = decoder_ops;

namespace {

// dst [K, cols] gets src [O, K]^T in columns [col0, col0 + O). In tiles, so that neither side
// strides through memory a float at a time (loading Gemma 2 2B's layers spent most of its time here).
void put_transposed(const std::vector<float>& src, int64_t O, int64_t K, std::vector<float>& dst, int64_t cols,
                    int64_t col0) {
  constexpr int64_t kTile = 64;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t o0 = 0; o0 < O; o0 += kTile)
    for (int64_t k0 = 0; k0 < K; k0 += kTile)
      for (int64_t o = o0; o < std::min(O, o0 + kTile); ++o)
        for (int64_t k = k0; k < std::min(K, k0 + kTile); ++k) dst[size_t(k * cols + col0 + o)] = src[size_t(o * K + k)];
}

void add_one(std::vector<float>& w) {  // Gemma's norms scale by 1 + w (computed in fp32, as transformers)
  for (float& v : w) v = 1.0f + v;
}

}  // namespace

struct DecoderModel::Scratch {
  std::vector<float> ln, qkv, att, hid, act, tmp;  // [N,D], [N,Q+2KV], [N,Q], [N,I or 2I], [N,I], [N,D]
  std::vector<float> cos_g, sin_g, cos_l, sin_l;   // [T, rd/2]
  Scratch(const DecoderConfig& c, int64_t N, int64_t T, const std::vector<float>& inv_global,
          const std::vector<float>& inv_local)
      : ln(size_t(N * c.d_model)), qkv(size_t(N * (c.q_dim() + 2 * c.kv_dim()))), att(size_t(N * c.q_dim())),
        hid(size_t(N * c.d_mlp * (c.gated_mlp ? 2 : 1))), act(c.gated_mlp ? size_t(N * c.d_mlp) : 0),
        tmp(size_t(N * c.d_model)) {
    if (c.learned_positions) return;
    const size_t n = size_t(T * c.rotary_dim / 2);
    cos_g.resize(n), sin_g.resize(n), cos_l.resize(n), sin_l.resize(n);
    ops::rope_tables(inv_global.data(), T, c.rotary_dim, cos_g.data(), sin_g.data());
    ops::rope_tables(inv_local.data(), T, c.rotary_dim, cos_l.data(), sin_l.data());
  }
};

DecoderModel::DecoderModel(const DecoderConfig& cfg, std::shared_ptr<const WeightSource> weights, int64_t n_blocks,
                           bool full)
    : cfg_(cfg), weights_(std::move(weights)), full_(full) {
  SAE_ASSERT(n_blocks >= 0 && n_blocks <= cfg.n_layers, "block count beyond the model");
  if (full) n_blocks = cfg.n_layers;
  weights_identity_ = weights_->identity();
  const int64_t D = cfg.d_model, V = cfg.vocab_size;
  // The embedding table's shape is checked now (one row read), not at the first forward pass.
  {
    std::vector<float> row(static_cast<size_t>(D));
    const int32_t zero = 0;
    weights_->load_rows("embed.weight", {V, D}, &zero, 1, row.data());
  }
  if (cfg.learned_positions) pos_ = weights_->load("pos_embed.weight", {cfg.n_positions, D});
  if (!cfg.learned_positions) {
    inv_freq_global_ = cfg.rope_global.inverse_frequencies(cfg.rotary_dim);
    inv_freq_local_ = cfg.rope_local.inverse_frequencies(cfg.rotary_dim);
  }
  for (int64_t l = 0; l < n_blocks; ++l) layers_.push_back(load_layer(l));
  if (full) {
    lnf_w_ = weights_->load("ln_final.weight", {D});
    if (cfg.norm_bias) lnf_b_ = weights_->load("ln_final.bias", {D});
    if (cfg.norm_unit_offset) add_one(lnf_w_);
    unembed_ = weights_->load(cfg.tied_embeddings ? "embed.weight" : "unembed.weight", {V, D});
  }
}

DecoderModel::Layer DecoderModel::load_layer(int64_t l) const {
  const DecoderConfig& c = cfg_;
  const int64_t D = c.d_model, Q = c.q_dim(), KV = c.kv_dim(), I = c.d_mlp, hd = c.head_dim;
  const std::string p = "blocks." + std::to_string(l) + ".";
  const WeightSource& w = *weights_;
  Layer L;
  L.ln1_w = w.load(p + "ln1.weight", {D});
  L.ln2_w = w.load(p + "ln2.weight", {D});
  if (c.norm_bias) {
    L.ln1_b = w.load(p + "ln1.bias", {D});
    L.ln2_b = w.load(p + "ln2.bias", {D});
  }
  if (c.post_sublayer_norms) {
    L.post_attn_w = w.load(p + "ln_attn_out.weight", {D});
    L.post_mlp_w = w.load(p + "ln_mlp_out.weight", {D});
  }
  if (c.qk_norm) {
    L.q_norm = w.load(p + "attn.q_norm.weight", {hd});
    L.k_norm = w.load(p + "attn.k_norm.weight", {hd});
  }
  if (c.norm_unit_offset)
    for (auto* v : {&L.ln1_w, &L.ln2_w, &L.post_attn_w, &L.post_mlp_w, &L.q_norm, &L.k_norm}) add_one(*v);

  const int64_t QKV = Q + 2 * KV;
  L.w_qkv.resize(size_t(D * QKV));
  put_transposed(w.load(p + "attn.q.weight", {Q, D}), Q, D, L.w_qkv, QKV, 0);
  put_transposed(w.load(p + "attn.k.weight", {KV, D}), KV, D, L.w_qkv, QKV, Q);
  put_transposed(w.load(p + "attn.v.weight", {KV, D}), KV, D, L.w_qkv, QKV, Q + KV);
  if (c.qkv_bias) {
    L.b_qkv = w.load(p + "attn.q.bias", {Q});
    for (const char* n : {"attn.k.bias", "attn.v.bias"}) {
      const std::vector<float> b = w.load(p + n, {KV});
      L.b_qkv.insert(L.b_qkv.end(), b.begin(), b.end());
    }
  }
  L.w_o.resize(size_t(Q * D));
  put_transposed(w.load(p + "attn.o.weight", {D, Q}), D, Q, L.w_o, D, 0);
  if (c.out_bias) L.b_o = w.load(p + "attn.o.bias", {D});

  const int64_t IN = c.gated_mlp ? 2 * I : I;
  L.w_in.resize(size_t(D * IN));
  if (c.gated_mlp) put_transposed(w.load(p + "mlp.gate.weight", {I, D}), I, D, L.w_in, IN, 0);
  put_transposed(w.load(p + "mlp.up.weight", {I, D}), I, D, L.w_in, IN, c.gated_mlp ? I : 0);
  if (c.mlp_bias) {
    if (c.gated_mlp) L.b_in = w.load(p + "mlp.gate.bias", {I});
    const std::vector<float> b = w.load(p + "mlp.up.bias", {I});
    L.b_in.insert(L.b_in.end(), b.begin(), b.end());
  }
  L.w_out.resize(size_t(I * D));
  put_transposed(w.load(p + "mlp.down.weight", {D, I}), D, I, L.w_out, D, 0);
  if (c.mlp_bias) L.b_out = w.load(p + "mlp.down.bias", {D});
  return L;
}

HookPoint decoder_hook(const DecoderConfig& cfg, const std::string& name) {
  HookPoint h = parse_hook(name, cfg.n_layers);
  if (h.kind == HookKind::PosEmbed && !cfg.learned_positions)
    user_error("hook \"" + name + "\" does not exist for " + cfg.model_type +
               " (rotary positions: nothing is added to the residual stream for them)");
  if (h.kind == HookKind::ResidMid && cfg.parallel_residual)
    user_error("hook \"" + name + "\" does not exist for " + cfg.model_type +
               " (parallel attention and MLP: no residual between them)");
  return h;
}

FinalNorm DecoderModel::final_norm() const {
  FinalNorm f;
  f.rms = cfg_.norm == NormType::RmsNorm;
  f.weight = lnf_w_.empty() ? nullptr : lnf_w_.data();
  f.bias = lnf_b_.empty() ? nullptr : lnf_b_.data();
  return f;
}

void DecoderModel::embed(const int32_t* tokens, int64_t B, int64_t T, float* tok, float* pos) const {
  const int64_t D = cfg_.d_model, N = B * T;
  SAE_ASSERT(T >= 1 && T <= cfg_.n_positions, "sequence length beyond n_positions");
  for (int64_t n = 0; n < N; ++n) SAE_ASSERT(tokens[n] >= 0 && tokens[n] < cfg_.vocab_size, "token id out of range");
  if (full_ && cfg_.tied_embeddings) {
    for (int64_t n = 0; n < N; ++n)
      std::memcpy(tok + n * D, unembed_.data() + int64_t(tokens[n]) * D, size_t(D) * sizeof(float));
  } else {
    weights_->load_rows("embed.weight", {cfg_.vocab_size, D}, tokens, N, tok);
  }
  if (cfg_.embed_scale != 1.0f)
    for (int64_t i = 0; i < N * D; ++i) tok[i] *= cfg_.embed_scale;
  for (int64_t n = 0; n < N; ++n) {
    if (cfg_.learned_positions) std::memcpy(pos + n * D, pos_.data() + (n % T) * D, size_t(D) * sizeof(float));
    else std::memset(pos + n * D, 0, size_t(D) * sizeof(float));
  }
}

void DecoderModel::attn_out(int64_t l, const float* x, int64_t B, int64_t T, Scratch& s, float* out) const {
  const DecoderConfig& c = cfg_;
  const int64_t D = c.d_model, N = B * T, Q = c.q_dim(), QKV = Q + 2 * c.kv_dim();
  const Layer& L = layers_[size_t(l)];
  const bool local = c.local_layer[size_t(l)] != 0;
  ops::norm_rows(x, N, D, c.norm, c.norm_eps, L.ln1_w.data(), c.norm_bias ? L.ln1_b.data() : nullptr, s.ln.data());
  ops::linear(s.ln.data(), N, D, L.w_qkv.data(), c.qkv_bias ? L.b_qkv.data() : nullptr, QKV, s.qkv.data());
  if (c.qk_norm) {
    ops::head_rms_norm(s.qkv.data(), N, QKV, c.n_heads, c.head_dim, c.norm_eps, L.q_norm.data());
    ops::head_rms_norm(s.qkv.data() + Q, N, QKV, c.n_kv_heads, c.head_dim, c.norm_eps, L.k_norm.data());
  }
  if (!c.learned_positions) {
    const std::vector<float>& cs = local ? s.cos_l : s.cos_g;
    const std::vector<float>& sn = local ? s.sin_l : s.sin_g;
    ops::rope(s.qkv.data(), N, T, QKV, c.n_heads + c.n_kv_heads, c.head_dim, c.rotary_dim, cs.data(), sn.data());
  }
  ops::AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, local ? c.sliding_window : 0, float(c.attn_scale),
                            float(c.attn_softcap)};
  ops::attention(s.qkv.data(), B, T, shape, s.att.data());
  ops::linear(s.att.data(), N, Q, L.w_o.data(), c.out_bias ? L.b_o.data() : nullptr, D, out);
  if (c.post_sublayer_norms) ops::norm_rows(out, N, D, c.norm, c.norm_eps, L.post_attn_w.data(), nullptr, out);
}

void DecoderModel::mlp_out(int64_t l, const float* x, int64_t N, Scratch& s, float* out) const {
  const DecoderConfig& c = cfg_;
  const int64_t D = c.d_model, I = c.d_mlp;
  const Layer& L = layers_[size_t(l)];
  ops::norm_rows(x, N, D, c.norm, c.norm_eps, L.ln2_w.data(), c.norm_bias ? L.ln2_b.data() : nullptr, s.ln.data());
  ops::linear(s.ln.data(), N, D, L.w_in.data(), c.mlp_bias ? L.b_in.data() : nullptr, c.gated_mlp ? 2 * I : I,
              s.hid.data());
  const float* h = s.hid.data();
  if (c.gated_mlp) {
    ops::gate(s.hid.data(), N, I, c.activation, s.act.data());
    h = s.act.data();
  } else {
    ops::activate(s.hid.data(), N * I, c.activation);
  }
  ops::linear(h, N, I, L.w_out.data(), c.mlp_bias ? L.b_out.data() : nullptr, D, out);
  if (c.post_sublayer_norms) ops::norm_rows(out, N, D, c.norm, c.norm_eps, L.post_mlp_w.data(), nullptr, out);
}

// Sequential: x += attn(x); x += mlp(x). Parallel (GPT-NeoX): x = (mlp(x) + attn(x)) + x, in
// transformers' order of additions.
void DecoderModel::run_blocks(int64_t l0, int64_t l1, float* x, int64_t B, int64_t T, Scratch& s) const {
  const int64_t N = B * T, ND = N * cfg_.d_model;
  std::vector<float> m(cfg_.parallel_residual ? size_t(ND) : 0);
  for (int64_t l = l0; l < l1; ++l) {
    attn_out(l, x, B, T, s, s.tmp.data());
    if (cfg_.parallel_residual) {
      mlp_out(l, x, N, s, m.data());
      ops::add_inplace(m.data(), s.tmp.data(), ND);
      ops::add_inplace(x, m.data(), ND);
      continue;
    }
    ops::add_inplace(x, s.tmp.data(), ND);
    mlp_out(l, x, N, s, s.tmp.data());
    ops::add_inplace(x, s.tmp.data(), ND);
  }
}

void DecoderModel::forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                           const std::vector<float*>& out) const {
  const int64_t D = cfg_.d_model, N = B * T, ND = N * D;
  SAE_ASSERT(out.size() == hooks.size(), "one output per hook");
  const int64_t n_blocks = layers_needed(hooks, cfg_.n_layers);
  SAE_ASSERT(n_blocks <= int64_t(layers_.size()), "hook needs a block that was not loaded");
  auto capture = [&](HookKind kind, int64_t layer, const float* src) {
    for (size_t h = 0; h < hooks.size(); ++h)
      if (hooks[h].kind == kind && hooks[h].layer == layer) std::memcpy(out[h], src, size_t(ND) * sizeof(float));
  };

  std::vector<float> x(static_cast<size_t>(ND)), tmp(x.size()), m(cfg_.parallel_residual ? x.size() : 0);  // [N,D]
  embed(tokens, B, T, x.data(), tmp.data());
  capture(HookKind::Embed, -1, x.data());
  capture(HookKind::PosEmbed, -1, tmp.data());
  if (cfg_.learned_positions) ops::add_inplace(x.data(), tmp.data(), ND);

  Scratch s(cfg_, n_blocks ? N : 0, T, inv_freq_global_, inv_freq_local_);
  for (int64_t l = 0; l < n_blocks; ++l) {
    capture(HookKind::ResidPre, l, x.data());
    attn_out(l, x.data(), B, T, s, tmp.data());
    capture(HookKind::AttnOut, l, tmp.data());
    if (cfg_.parallel_residual) {
      mlp_out(l, x.data(), N, s, m.data());
      capture(HookKind::MlpOut, l, m.data());
      ops::add_inplace(m.data(), tmp.data(), ND);
      ops::add_inplace(x.data(), m.data(), ND);
    } else {
      ops::add_inplace(x.data(), tmp.data(), ND);
      capture(HookKind::ResidMid, l, x.data());
      mlp_out(l, x.data(), N, s, tmp.data());
      capture(HookKind::MlpOut, l, tmp.data());
      ops::add_inplace(x.data(), tmp.data(), ND);
    }
    capture(HookKind::ResidPost, l, x.data());
  }
  for (size_t h = 0; h < hooks.size(); ++h)
    if (hooks[h].kind == HookKind::LnFinalNormalized)
      ops::norm_rows(x.data(), N, D, cfg_.norm, cfg_.norm_eps, nullptr, nullptr, out[h]);
}

// The model up to the hook runs once. What the hook sees is then either the residual stream
// itself (resid_pre/mid/post) or a term about to be added to it (hook_embed + hook_pos_embed,
// attn_out, mlp_out: `side`, added after the edit; IEEE addition commutes, so a + x is x + a
// bit for bit), or the normalized final residual (ln_final.hook_normalized, before the final
// norm's affine map). Each edit then runs on its own copy, through the rest of the model. With
// a parallel residual the other sublayer's output (`other`, computed from the block's input
// before any edit) joins the edited one as transformers adds them: (mlp + attn) + x.
void DecoderModel::forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                                 const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const {
  const int64_t D = cfg_.d_model, N = B * T, ND = N * D, L = cfg_.n_layers, l = hook.layer;
  SAE_ASSERT(is_full(), "forward_final needs every block and the final norm (load_transformer_full)");
  SAE_ASSERT(edits.size() == final.size(), "one output per edit");
  SAE_ASSERT(hook.layer < L, "hook layer beyond the model");
  SAE_ASSERT(!(hook.kind == HookKind::ResidMid && cfg_.parallel_residual), "no hook_resid_mid with a parallel residual");
  SAE_ASSERT(!(hook.kind == HookKind::PosEmbed && !cfg_.learned_positions), "no hook_pos_embed with rotary positions");
  const bool par = cfg_.parallel_residual;
  Scratch s(cfg_, N, T, inv_freq_global_, inv_freq_local_);
  std::vector<float> x(static_cast<size_t>(ND)), side(x.size()), v(x.size());  // [N,D] each
  std::vector<float> other(par ? x.size() : 0);
  embed(tokens, B, T, x.data(), side.data());

  enum class Mode { Residual, Side, Normalized } mode = Mode::Residual;
  int64_t resume = L;     // first whole block after the hook
  bool then_mlp = false;  // block l's MLP sublayer follows the hook (sequential blocks)
  auto to_block = [&](int64_t upto) {
    ops::add_inplace(x.data(), side.data(), ND);
    run_blocks(0, upto, x.data(), B, T, s);
  };
  switch (hook.kind) {
    case HookKind::Embed:
      std::swap(x, side);  // the hook sees the token embeddings; the positional ones (or 0) are added after
      mode = Mode::Side, resume = 0;
      break;
    case HookKind::PosEmbed:
      mode = Mode::Side, resume = 0;
      break;
    case HookKind::ResidPre:
      to_block(l);
      resume = l;
      break;
    case HookKind::AttnOut:
    case HookKind::ResidMid:
      to_block(l);
      if (par) mlp_out(l, x.data(), N, s, other.data());
      attn_out(l, x.data(), B, T, s, side.data());
      if (hook.kind == HookKind::ResidMid) ops::add_inplace(x.data(), side.data(), ND);
      mode = hook.kind == HookKind::ResidMid ? Mode::Residual : Mode::Side;
      then_mlp = !par, resume = l + 1;
      break;
    case HookKind::MlpOut:
      to_block(l);
      attn_out(l, x.data(), B, T, s, par ? other.data() : side.data());
      if (!par) ops::add_inplace(x.data(), side.data(), ND);
      mlp_out(l, x.data(), N, s, side.data());
      mode = Mode::Side, resume = l + 1;
      break;
    case HookKind::ResidPost:
      to_block(l + 1);
      resume = l + 1;
      break;
    case HookKind::LnFinalNormalized:
      to_block(L);
      ops::norm_rows(x.data(), N, D, cfg_.norm, cfg_.norm_eps, nullptr, nullptr, side.data());
      mode = Mode::Normalized;
      break;
  }

  const float *w = lnf_w_.data(), *b = lnf_b_.empty() ? nullptr : lnf_b_.data();
  for (size_t e = 0; e < edits.size(); ++e) {
    const float* hooked = mode == Mode::Residual ? x.data() : side.data();
    std::memcpy(v.data(), hooked, size_t(ND) * sizeof(float));
    if (edits[e]) edits[e](v.data(), N);
    if (mode == Mode::Normalized) {  // the final norm's affine map, as norm_rows applies it
      float* o = final[e];
#pragma omp parallel for schedule(static)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < D; ++c) {
          const float t = v[size_t(n * D + c)];
          o[n * D + c] = b ? t * w[c] + b[c] : t * w[c];
        }
      continue;
    }
    if (mode == Mode::Side) {
      // Parallel: (mlp + attn) + x, whichever of the two was edited.
      if (par && (hook.kind == HookKind::AttnOut || hook.kind == HookKind::MlpOut))
        ops::add_inplace(v.data(), other.data(), ND);
      ops::add_inplace(v.data(), x.data(), ND);
    }
    if (then_mlp) {
      mlp_out(l, v.data(), N, s, s.tmp.data());
      ops::add_inplace(v.data(), s.tmp.data(), ND);
    }
    run_blocks(resume, L, v.data(), B, T, s);
    ops::norm_rows(v.data(), N, D, cfg_.norm, cfg_.norm_eps, w, b, final[e]);
  }
}

}  // namespace saepipe
