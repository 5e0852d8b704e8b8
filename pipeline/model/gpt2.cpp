// GPT-2 forward pass on the CPU: BLAS matmuls (saepipe::cpu::matmul), OpenMP for the rest.
// Follows Hugging Face's GPT2Model in fp32; hooks follow TransformerLens (hook_normalized is
// the LayerNorm output before its weight and bias).
//
// Threads: all parallelism is OpenMP's. Each matmul is cut into fixed blocks of rows spread over
// the OpenMP threads (so the result does not depend on the thread count), each block a call to
// BLAS, which should then be single-threaded: callers hold a SingleThreadedBlas
// (blas_threads.hpp) around their forward passes. (With both pools active, OpenMP threads
// spinning between regions and BLAS threads yielding fought over the cores: GPT-2 small on 2
// cores ran at 540 tokens/s, 990 with OMP_WAIT_POLICY=passive, ~1400 with this scheme.)
//
// Shape legend: B sequences, T positions, N = B*T rows, C d_model, H heads, hs head size,
// I MLP width, V vocab, P n_positions.
#include "pipeline/model/gpt2.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/kernels.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/model/fast_math.hpp"
#include "pipeline/model/safetensors.hpp"

namespace saepipe {

namespace {

int64_t need_positive(const nlohmann::json& j, const char* key, const std::string& where, int64_t fallback = -1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback > 0) return fallback;
    user_error(where + ": lacks \"" + key + "\"");
  }
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1)
    user_error(where + ": \"" + key + "\" must be a positive integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

// out[N,C] = (x - mean) / sqrt(var + eps), then * w + b when w is given.
void layer_norm(const float* x, int64_t N, int64_t C, double eps, const float* w, const float* b, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * C;
    float* o = out + n * C;
    double sum = 0;  // double: the statistics of wide rows stay exact to fp32 rounding
    for (int64_t c = 0; c < C; ++c) sum += xr[c];
    const float mean = float(sum / double(C));
    double sq = 0;
    for (int64_t c = 0; c < C; ++c) sq += double(xr[c] - mean) * double(xr[c] - mean);
    const float rstd = float(1.0 / std::sqrt(sq / double(C) + eps));
    for (int64_t c = 0; c < C; ++c) {
      const float v = (xr[c] - mean) * rstd;
      o[c] = w ? v * w[c] + b[c] : v;
    }
  }
}

// Rows per BLAS call. Fixed, not derived from the thread count: sgemm's rounding depends on
// the number of rows it is given, and the store must not depend on how many threads made it.
// (128 and 256 ran at the same speed on GPT-2 small; 128 still gives 2 threads work for 2
// sequences of 128.)
constexpr int64_t kRowBlock = 128;

// out[N,O] = x[N,K] W[K,O] + bias[O]  (Conv1D layout); row blocks spread over the OpenMP threads.
void linear(const float* x, int64_t N, int64_t K, const float* W, const float* bias, int64_t O, float* out) {
  const int64_t R = kRowBlock, n_blocks = (N + R - 1) / R;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t lo = blk * R, hi = std::min(N, lo + R);
    for (int64_t n = lo; n < hi; ++n) std::memcpy(out + n * O, bias, size_t(O) * sizeof(float));
    cpu::matmul(false, false, hi - lo, O, K, 1.0f, x + lo * K, K, W, O, 1.0f, out + lo * O, O);
  }
}

// The elementwise kernels come in an AVX2 and a baseline build, picked at load time (GCC
// target_clones): the library is compiled for any x86-64, and 8-wide vectors matter here.
#define SAE_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))

// One head of causal self-attention for one sequence: qkv [T,3C] (q | k | v, heads contiguous
// within each), out [T,C] (this head's hs columns); p [T] is scratch.
SAE_VECTOR_CLONES
void attend_head(const float* qkv, int64_t T, int64_t C, int64_t hs, int64_t h, float scale, float* p, float* out) {
  for (int64_t t = 0; t < T; ++t) {
    const float* q = qkv + t * 3 * C + h * hs;
    float mx = -INFINITY;
    for (int64_t u = 0; u <= t; ++u) {
      const float* k = qkv + u * 3 * C + C + h * hs;
      float d = 0;
#pragma omp simd reduction(+ : d)
      for (int64_t i = 0; i < hs; ++i) d += q[i] * k[i];
      p[u] = d * scale;
      mx = std::max(mx, p[u]);
    }
    float sum = 0;
    for (int64_t u = 0; u <= t; ++u) {
      p[u] = std::exp(p[u] - mx);
      sum += p[u];
    }
    const float inv = 1.0f / sum;
    float* o = out + t * C + h * hs;
    for (int64_t i = 0; i < hs; ++i) o[i] = 0;
    for (int64_t u = 0; u <= t; ++u) {
      const float* v = qkv + u * 3 * C + 2 * C + h * hs;
      const float w = p[u] * inv;
#pragma omp simd
      for (int64_t i = 0; i < hs; ++i) o[i] += w * v[i];
    }
  }
}

// Causal self-attention. qkv [B,T,3C], out [B,T,C].
void attention(const float* qkv, int64_t B, int64_t T, int64_t C, int64_t H, bool scale, float* out) {
  const int64_t hs = C / H;
  const float s = scale ? 1.0f / std::sqrt(float(hs)) : 1.0f;
#pragma omp parallel
  {
    std::vector<float> p(static_cast<size_t>(T));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) attend_head(qkv + b * T * 3 * C, T, C, hs, h, s, p.data(), out + b * T * C);
  }
}

// x[lo, hi) = gelu(x) with tanh (gelu_new).
SAE_VECTOR_CLONES
void gelu_tanh_range(float* x, int64_t lo, int64_t hi) {
  constexpr float k = 0.7978845608028654f;  // sqrt(2/pi)
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + fast_tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void gelu(float* x, int64_t n, bool tanh_approx) {
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
    if (tanh_approx) {
      gelu_tanh_range(x, lo, hi);
    } else {
      for (int64_t i = lo; i < hi; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
    }
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

Gpt2Config Gpt2Config::from_json(const nlohmann::json& j, const std::string& where) {
  Gpt2Config c;
  c.n_embd = need_positive(j, "n_embd", where);
  c.n_layer = need_positive(j, "n_layer", where);
  c.n_head = need_positive(j, "n_head", where);
  c.n_positions = need_positive(j, "n_positions", where, j.contains("n_ctx") ? need_positive(j, "n_ctx", where) : -1);
  c.vocab_size = need_positive(j, "vocab_size", where);
  c.n_inner = need_positive(j, "n_inner", where, 4 * c.n_embd);
  if (c.n_embd % c.n_head != 0)
    user_error(where + ": n_embd " + std::to_string(c.n_embd) + " is not a multiple of n_head " + std::to_string(c.n_head));
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number() || j["layer_norm_epsilon"].get<double>() <= 0)
      user_error(where + ": \"layer_norm_epsilon\" must be a positive number");
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  for (auto [key, field] : {std::pair{"bos_token_id", &c.bos_token_id}, std::pair{"eos_token_id", &c.eos_token_id}}) {
    if (j.contains(key) && !j[key].is_null()) {
      if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0 || j[key].get<int64_t>() >= c.vocab_size)
        user_error(where + ": \"" + key + "\" must be a token id below vocab_size");
      *field = j[key].get<int64_t>();
    }
  }
  c.bos_token_id = std::min(c.bos_token_id, c.vocab_size - 1);
  c.eos_token_id = std::min(c.eos_token_id, c.vocab_size - 1);
  const std::string act = j.value("activation_function", "gelu_new");
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.gelu_tanh = true;
  else if (act == "gelu") c.gelu_tanh = false;
  else user_error(where + ": activation_function \"" + act + "\" is not supported (gelu_new, gelu_pytorch_tanh, gelu)");
  c.scale_attn_weights = j.value("scale_attn_weights", true);
  if (j.value("scale_attn_by_inverse_layer_idx", false))
    user_error(where + ": scale_attn_by_inverse_layer_idx = true is not supported");
  return c;
}

Gpt2Model::Gpt2Model(const Gpt2Config& cfg, const Checkpoint& ck, int64_t n_blocks, bool with_ln_f) : Gpt2Base(cfg) {
  const int64_t C = cfg.n_embd, I = cfg.n_inner;
  // Hugging Face saves GPT2Model without a prefix and GPT2LMHeadModel with "transformer.".
  const std::string p = ck.has("wte.weight") ? "" : ck.has("transformer.wte.weight") ? "transformer." : "";
  weights_identity_ = ck.identity();
  wte_ = ck.load(p + "wte.weight", {cfg.vocab_size, C});
  wpe_ = ck.load(p + "wpe.weight", {cfg.n_positions, C});
  for (int64_t l = 0; l < n_blocks; ++l) {
    const std::string h = p + "h." + std::to_string(l) + ".";
    Block b;
    b.ln1_w = ck.load(h + "ln_1.weight", {C});
    b.ln1_b = ck.load(h + "ln_1.bias", {C});
    b.attn_w = ck.load(h + "attn.c_attn.weight", {C, 3 * C});
    b.attn_b = ck.load(h + "attn.c_attn.bias", {3 * C});
    b.proj_w = ck.load(h + "attn.c_proj.weight", {C, C});
    b.proj_b = ck.load(h + "attn.c_proj.bias", {C});
    b.ln2_w = ck.load(h + "ln_2.weight", {C});
    b.ln2_b = ck.load(h + "ln_2.bias", {C});
    b.fc_w = ck.load(h + "mlp.c_fc.weight", {C, I});
    b.fc_b = ck.load(h + "mlp.c_fc.bias", {I});
    b.fc_proj_w = ck.load(h + "mlp.c_proj.weight", {I, C});
    b.fc_proj_b = ck.load(h + "mlp.c_proj.bias", {C});
    blocks_.push_back(std::move(b));
  }
  if (with_ln_f) {
    lnf_w_ = ck.load(p + "ln_f.weight", {C});
    lnf_b_ = ck.load(p + "ln_f.bias", {C});
  }
}

nlohmann::json Gpt2Base::config_json() const {
  return {{"model_type", "gpt2"},       {"n_embd", cfg_.n_embd},           {"n_layer", cfg_.n_layer},
          {"n_head", cfg_.n_head},       {"n_positions", cfg_.n_positions}, {"vocab_size", cfg_.vocab_size},
          {"n_inner", cfg_.n_inner},     {"layer_norm_epsilon", cfg_.layer_norm_epsilon},
          {"gelu_tanh", cfg_.gelu_tanh}, {"scale_attn_weights", cfg_.scale_attn_weights}};
}

struct Gpt2Model::Scratch {
  std::vector<float> ln, qkv, att, hid, tmp;  // [N,C], [N,3C], [N,C], [N,I], [N,C]
  Scratch(int64_t N, int64_t C, int64_t I)
      : ln(size_t(N * C)), qkv(size_t(N * 3 * C)), att(size_t(N * C)), hid(size_t(N * I)), tmp(size_t(N * C)) {}
};

void Gpt2Model::embed(const int32_t* tokens, int64_t B, int64_t T, float* tok, float* pos) const {
  const int64_t C = cfg_.n_embd, N = B * T;
  SAE_ASSERT(T >= 1 && T <= cfg_.n_positions, "sequence length beyond n_positions");
  for (int64_t n = 0; n < N; ++n) {
    const int32_t t = tokens[n];
    SAE_ASSERT(t >= 0 && t < cfg_.vocab_size, "token id out of range");
    std::memcpy(tok + n * C, wte_.data() + int64_t(t) * C, size_t(C) * sizeof(float));
    std::memcpy(pos + n * C, wpe_.data() + (n % T) * C, size_t(C) * sizeof(float));
  }
}

void Gpt2Model::attn_out(int64_t l, const float* x, int64_t B, int64_t T, Scratch& s, float* out) const {
  const int64_t C = cfg_.n_embd, N = B * T;
  const Block& b = blocks_[size_t(l)];
  layer_norm(x, N, C, cfg_.layer_norm_epsilon, b.ln1_w.data(), b.ln1_b.data(), s.ln.data());
  linear(s.ln.data(), N, C, b.attn_w.data(), b.attn_b.data(), 3 * C, s.qkv.data());  // [N,3C]
  attention(s.qkv.data(), B, T, C, cfg_.n_head, cfg_.scale_attn_weights, s.att.data());
  linear(s.att.data(), N, C, b.proj_w.data(), b.proj_b.data(), C, out);
}

void Gpt2Model::mlp_out(int64_t l, const float* x, int64_t N, Scratch& s, float* out) const {
  const int64_t C = cfg_.n_embd, I = cfg_.n_inner;
  const Block& b = blocks_[size_t(l)];
  layer_norm(x, N, C, cfg_.layer_norm_epsilon, b.ln2_w.data(), b.ln2_b.data(), s.ln.data());
  linear(s.ln.data(), N, C, b.fc_w.data(), b.fc_b.data(), I, s.hid.data());  // [N,I]
  gelu(s.hid.data(), N * I, cfg_.gelu_tanh);
  linear(s.hid.data(), N, I, b.fc_proj_w.data(), b.fc_proj_b.data(), C, out);
}

void Gpt2Model::run_blocks(int64_t l0, int64_t l1, float* x, int64_t B, int64_t T, Scratch& s) const {
  const int64_t N = B * T, NC = N * cfg_.n_embd;
  for (int64_t l = l0; l < l1; ++l) {
    attn_out(l, x, B, T, s, s.tmp.data());
    add_inplace(x, s.tmp.data(), NC);
    mlp_out(l, x, N, s, s.tmp.data());
    add_inplace(x, s.tmp.data(), NC);
  }
}

void Gpt2Model::forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                        const std::vector<float*>& out) const {
  const int64_t C = cfg_.n_embd, N = B * T;
  SAE_ASSERT(out.size() == hooks.size(), "one output per hook");
  const int64_t n_blocks = layers_needed(hooks, cfg_.n_layer);
  SAE_ASSERT(n_blocks <= int64_t(blocks_.size()), "hook needs a block that was not loaded");
  auto capture = [&](HookKind kind, int64_t layer, const float* src) {
    for (size_t h = 0; h < hooks.size(); ++h)
      if (hooks[h].kind == kind && hooks[h].layer == layer) std::memcpy(out[h], src, size_t(N * C) * sizeof(float));
  };

  std::vector<float> x(size_t(N * C)), tmp(size_t(N * C));  // [N,C]
  embed(tokens, B, T, x.data(), tmp.data());
  capture(HookKind::Embed, -1, x.data());
  capture(HookKind::PosEmbed, -1, tmp.data());
  add_inplace(x.data(), tmp.data(), N * C);

  Scratch s(n_blocks ? N : 0, C, cfg_.n_inner);
  for (int64_t l = 0; l < n_blocks; ++l) {
    capture(HookKind::ResidPre, l, x.data());
    attn_out(l, x.data(), B, T, s, tmp.data());
    capture(HookKind::AttnOut, l, tmp.data());
    add_inplace(x.data(), tmp.data(), N * C);
    capture(HookKind::ResidMid, l, x.data());
    mlp_out(l, x.data(), N, s, tmp.data());
    capture(HookKind::MlpOut, l, tmp.data());
    add_inplace(x.data(), tmp.data(), N * C);
    capture(HookKind::ResidPost, l, x.data());
  }
  for (size_t h = 0; h < hooks.size(); ++h)
    if (hooks[h].kind == HookKind::LnFinalNormalized)
      layer_norm(x.data(), N, C, cfg_.layer_norm_epsilon, nullptr, nullptr, out[h]);
}

// The model up to the hook runs once. What the hook sees is then either the residual stream
// itself (resid_pre/mid/post) or a term about to be added to it (hook_embed + hook_pos_embed,
// attn_out, mlp_out: `side`, added after the edit; IEEE addition commutes, so a + x is x + a
// bit for bit), or the normalized final residual (ln_final.hook_normalized, before ln_f's affine
// map). Each edit then runs on its own copy, through the rest of the model.
void Gpt2Model::forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                              const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const {
  const int64_t C = cfg_.n_embd, N = B * T, NC = N * C, L = cfg_.n_layer, l = hook.layer;
  SAE_ASSERT(is_full(), "forward_final needs every block and ln_f (load_transformer_full)");
  SAE_ASSERT(edits.size() == final.size(), "one output per edit");
  SAE_ASSERT(hook.layer < L, "hook layer beyond the model");
  Scratch s(N, C, cfg_.n_inner);
  std::vector<float> x(static_cast<size_t>(NC)), side(x.size()), v(x.size());  // [N,C] each
  embed(tokens, B, T, x.data(), side.data());

  enum class Mode { Residual, Side, Normalized } mode = Mode::Residual;
  int64_t resume = L;     // first whole block after the hook
  bool then_mlp = false;  // block l's MLP sublayer follows the hook
  switch (hook.kind) {
    case HookKind::Embed:
      std::swap(x, side);  // the hook sees the token embeddings; the positional ones are added after
      mode = Mode::Side, resume = 0;
      break;
    case HookKind::PosEmbed:
      mode = Mode::Side, resume = 0;
      break;
    case HookKind::ResidPre:
      add_inplace(x.data(), side.data(), NC);
      run_blocks(0, l, x.data(), B, T, s);
      resume = l;
      break;
    case HookKind::AttnOut:
    case HookKind::ResidMid:
      add_inplace(x.data(), side.data(), NC);
      run_blocks(0, l, x.data(), B, T, s);
      attn_out(l, x.data(), B, T, s, side.data());
      if (hook.kind == HookKind::ResidMid) add_inplace(x.data(), side.data(), NC);
      mode = hook.kind == HookKind::ResidMid ? Mode::Residual : Mode::Side;
      then_mlp = true, resume = l + 1;
      break;
    case HookKind::MlpOut:
      add_inplace(x.data(), side.data(), NC);
      run_blocks(0, l, x.data(), B, T, s);
      attn_out(l, x.data(), B, T, s, side.data());
      add_inplace(x.data(), side.data(), NC);
      mlp_out(l, x.data(), N, s, side.data());
      mode = Mode::Side, resume = l + 1;
      break;
    case HookKind::ResidPost:
      add_inplace(x.data(), side.data(), NC);
      run_blocks(0, l + 1, x.data(), B, T, s);
      resume = l + 1;
      break;
    case HookKind::LnFinalNormalized:
      add_inplace(x.data(), side.data(), NC);
      run_blocks(0, L, x.data(), B, T, s);
      layer_norm(x.data(), N, C, cfg_.layer_norm_epsilon, nullptr, nullptr, side.data());
      mode = Mode::Normalized;
      break;
  }

  for (size_t e = 0; e < edits.size(); ++e) {
    const float* hooked = mode == Mode::Residual ? x.data() : side.data();
    std::memcpy(v.data(), hooked, size_t(NC) * sizeof(float));
    if (edits[e]) edits[e](v.data(), N);
    if (mode == Mode::Normalized) {  // ln_f's affine map, as layer_norm applies it
      const float *w = lnf_w_.data(), *b = lnf_b_.data();
      float* o = final[e];
#pragma omp parallel for schedule(static)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) o[n * C + c] = v[size_t(n * C + c)] * w[c] + b[c];
      continue;
    }
    if (mode == Mode::Side) add_inplace(v.data(), x.data(), NC);
    if (then_mlp) {
      mlp_out(l, v.data(), N, s, s.tmp.data());
      add_inplace(v.data(), s.tmp.data(), NC);
    }
    run_blocks(resume, L, v.data(), B, T, s);
    layer_norm(v.data(), N, C, cfg_.layer_norm_epsilon, lnf_w_.data(), lnf_b_.data(), final[e]);
  }
}

Gpt2Config read_model_config(const std::string& model_dir) {
  const std::string config_path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!path_exists(config_path)) user_error(model_dir + ": no config.json (a Hugging Face model directory is needed)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    user_error(config_path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) user_error(config_path + ": not a JSON object");
  const std::string type = j.value("model_type", "");
  if (type != "gpt2")
    user_error(config_path + ": model_type \"" + type + "\" is not supported (supported: gpt2)");
  return Gpt2Config::from_json(j, config_path);
}

}  // namespace saepipe
