// DecoderCudaModel (decoder.hpp): device weights, cuBLASLt matmuls and the forward pass, in the
// order of DecoderModel::forward. Every CUDA and cuBLAS call is checked (cuda_check.hpp).
//
// Row-major Y[N,O] = X[N,K] W[K,O] in cuBLASLt (column-major) is Y^T[O,N] = W^T[O,K] X^T[K,N]:
// A = W as O x K (ld O), B = X as K x N (ld K), D = Y as O x N (ld O), no transposes.
//
// Shape legend: see decoder.hpp.
#include <cublasLt.h>

#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/model/cuda/decoder.hpp"
#include "pipeline/model/cuda/harvest_loop.hpp"
#include "pipeline/model/cuda/decoder_kernels.hpp"
#include "pipeline/model/decoder_ops.hpp"

namespace saepipe::cuda {

namespace {

cudaDataType_t cuda_type(ActType t) {
  return t == ActType::F32 ? CUDA_R_32F : t == ActType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

void upload_f32(DeviceBuffer<float>& buf, const std::vector<float>& v, cudaStream_t s) { buf.upload(v, s); }

void upload_act(DeviceBuffer<uint8_t>& buf, const std::vector<float>& v, ActType t, cudaStream_t s) {
  std::vector<uint8_t> bytes(v.size() * act_bytes(t));
  convert_from_f32(v.data(), int64_t(v.size()), t, bytes.data());
  buf.upload(bytes, s);
}

}  // namespace

struct DecoderCudaModel::Impl {
  struct Layer {
    DeviceBuffer<float> ln1_w, ln1_b, ln2_w, ln2_b, post_attn_w, post_mlp_w, q_norm, k_norm, b_qkv, b_o, b_in, b_out;
    DeviceBuffer<uint8_t> w_qkv, w_o, w_in, w_out;  // activation type, [in, out]
  };
  using Key = std::tuple<int64_t, int64_t, int64_t>;  // N K O
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };

  ActType act;
  std::vector<Layer> layers;
  DeviceBuffer<float> embed, pos;  // [V,D], [P,D]
  DeviceBuffer<float> lnf_w, lnf_b;  // [D] the final norm (full models), bias or none
  std::vector<float> inv_global, inv_local;

  cublasLtHandle_t lt = nullptr;
  DeviceBuffer<uint8_t> workspace;
  std::map<Key, Plan> plans;

  // Scratch for `capacity` rows and rotary tables for `rope_T` positions.
  int64_t capacity = 0, rope_T = 0;
  DeviceBuffer<float> x, a, m, qkv, hid;  // fp32: [N,D] x3, [N,Q+2KV], [N,I or 2I]
  DeviceBuffer<uint8_t> ln, att, h;       // activation type: [N,D], [N,Q], [N,I]
  DeviceBuffer<float> cos_g, sin_g, cos_l, sin_l;
  DeviceBuffer<int32_t> positions;        // [N]: n % T, for learned positions
  int64_t positions_T = 0;

  // Every pass runs on `stream` (the scratch above is shared by all of them), ordered with a
  // caller's stream by the two events; the lock is held while a pass is enqueued.
  std::mutex mu;
  cudaStream_t stream = nullptr;
  cudaEvent_t before = nullptr, after = nullptr;
  DeviceBuffer<int32_t> tokens;
  std::vector<DeviceBuffer<float>> hook_out;

  Impl() {
    SAE_CUBLAS_CHECK(cublasLtCreate(&lt));
    workspace.resize(int64_t(32) << 20);
    SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    SAE_CUDA_CHECK(cudaEventCreateWithFlags(&before, cudaEventDisableTiming));
    SAE_CUDA_CHECK(cudaEventCreateWithFlags(&after, cudaEventDisableTiming));
  }
  ~Impl() {
    for (auto& [key, p] : plans) {
      if (p.a) cublasLtMatrixLayoutDestroy(p.a);
      if (p.b) cublasLtMatrixLayoutDestroy(p.b);
      if (p.c) cublasLtMatrixLayoutDestroy(p.c);
      if (p.op) cublasLtMatmulDescDestroy(p.op);
    }
    if (lt) cublasLtDestroy(lt);
    if (stream) cudaStreamSynchronize(stream);
    if (before) cudaEventDestroy(before);
    if (after) cudaEventDestroy(after);
    if (stream) cudaStreamDestroy(stream);
  }

  Plan& plan(int64_t N, int64_t K, int64_t O) {
    auto it = plans.find(Key{N, K, O});
    if (it != plans.end()) return it->second;
    Plan p;
    SAE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t n = CUBLAS_OP_N;
    SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &n, sizeof n));
    SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n));
    SAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, cuda_type(act), uint64_t(O), uint64_t(K), O));
    SAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, cuda_type(act), uint64_t(K), uint64_t(N), K));
    SAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, uint64_t(O), uint64_t(N), O));
    cublasLtMatmulPreference_t pref = nullptr;
    SAE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = uint64_t(workspace.size());
    SAE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
    SAE_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st != CUBLAS_STATUS_SUCCESS || found == 0)
      internal_error("cuBLASLt has no algorithm for a " + std::to_string(N) + "x" + std::to_string(K) + " by " +
                     std::to_string(K) + "x" + std::to_string(O) + " matmul (" + to_string(act) + " -> fp32)");
    p.algo = result.algo;
    return plans.emplace(Key{N, K, O}, p).first->second;
  }

  // Y[N,O] (fp32) = X[N,K] W[K,O] (activation type) (+ bias[O], fp32).
  void linear(const void* X, const DeviceBuffer<uint8_t>& W, const DeviceBuffer<float>& bias, float* Y, int64_t N,
              int64_t K, int64_t O, cudaStream_t s) {
    if (N == 0) return;
    Plan& p = plan(N, K, O);
    const float alpha = 1.0f, beta = 0.0f;
    SAE_CUBLAS_CHECK(cublasLtMatmul(lt, p.op, &alpha, W.data(), p.a, X, p.b, &beta, Y, p.c, Y, p.c, &p.algo,
                                    workspace.data(), size_t(workspace.size()), s));
    if (bias.size() > 0) decoder_add_bias(Y, bias.data(), N, O, s);
  }

  void reserve(const DecoderConfig& c, int64_t N) {
    if (N <= capacity) return;
    const int64_t e = int64_t(act_bytes(act)), D = c.d_model, QKV = c.q_dim() + 2 * c.kv_dim();
    x.resize(N * D), a.resize(N * D), m.resize(N * D), qkv.resize(N * QKV);
    hid.resize(N * c.d_mlp * (c.gated_mlp ? 2 : 1));
    ln.resize(N * D * e), att.resize(N * c.q_dim() * e), h.resize(N * c.d_mlp * e);
    capacity = N;
  }

  void rope_for(const DecoderConfig& c, int64_t T) {
    if (c.learned_positions || T == rope_T) return;
    const size_t n = size_t(T * c.rotary_dim / 2);
    std::vector<float> cg(n), sg(n), cl(n), sl(n);
    decoder_ops::rope_tables(inv_global.data(), T, c.rotary_dim, cg.data(), sg.data());
    decoder_ops::rope_tables(inv_local.data(), T, c.rotary_dim, cl.data(), sl.data());
    cos_g.upload(cg, stream), sin_g.upload(sg, stream), cos_l.upload(cl, stream), sin_l.upload(sl, stream);
    rope_T = T;
  }

  const float* ptr(const DeviceBuffer<float>& b) const { return b.size() ? b.data() : nullptr; }

  // positions [N] = n % T, for learned positions.
  void positions_for(int64_t N, int64_t T) {
    if (positions.size() == N && positions_T == T) return;
    positions_T = T;
    std::vector<int32_t> p(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) p[size_t(n)] = int32_t(n % T);
    positions.upload(p, stream);
  }

  // a [N,D] = what block l's attention adds to the residual stream x.
  void attn_out(const DecoderConfig& c, int64_t l, float* x_in, int64_t B, int64_t T, float* out, cudaStream_t s) {
    const int64_t N = B * T, D = c.d_model, Q = c.q_dim(), QKV = Q + 2 * c.kv_dim();
    Layer& L = layers[size_t(l)];
    const bool local = c.local_layer[size_t(l)] != 0;
    decoder_norm(x_in, nullptr, N, D, c.norm, c.norm_eps, L.ln1_w.data(), ptr(L.ln1_b), ln.data(), act, s);
    linear(ln.data(), L.w_qkv, L.b_qkv, qkv.data(), N, D, QKV, s);
    if (c.qk_norm) {
      decoder_head_rms_norm(qkv.data(), N, QKV, c.n_heads, c.head_dim, c.norm_eps, L.q_norm.data(), s);
      decoder_head_rms_norm(qkv.data() + Q, N, QKV, c.n_kv_heads, c.head_dim, c.norm_eps, L.k_norm.data(), s);
    }
    if (!c.learned_positions)
      decoder_rope(qkv.data(), N, T, QKV, c.n_heads + c.n_kv_heads, c.head_dim, c.rotary_dim,
                   (local ? cos_l : cos_g).data(), (local ? sin_l : sin_g).data(), s);
    decoder_attention(qkv.data(), B, T, c.n_heads, c.n_kv_heads, c.head_dim, local ? c.sliding_window : 0,
                      float(c.attn_scale), float(c.attn_softcap), att.data(), act, s);
    linear(att.data(), L.w_o, L.b_o, out, N, Q, D, s);
    if (c.post_sublayer_norms)
      decoder_norm(out, nullptr, N, D, c.norm, c.norm_eps, L.post_attn_w.data(), nullptr, out, ActType::F32, s);
  }

  // out [N,D] = what block l's MLP adds, from its input x_in.
  void mlp_out(const DecoderConfig& c, int64_t l, float* x_in, int64_t N, float* out, cudaStream_t s) {
    const int64_t D = c.d_model, I = c.d_mlp;
    Layer& L = layers[size_t(l)];
    decoder_norm(x_in, nullptr, N, D, c.norm, c.norm_eps, L.ln2_w.data(), ptr(L.ln2_b), ln.data(), act, s);
    linear(ln.data(), L.w_in, L.b_in, hid.data(), N, D, c.gated_mlp ? 2 * I : I, s);
    decoder_activation(hid.data(), N, I, c.gated_mlp, c.activation, h.data(), act, s);
    linear(h.data(), L.w_out, L.b_out, out, N, I, D, s);
    if (c.post_sublayer_norms)
      decoder_norm(out, nullptr, N, D, c.norm, c.norm_eps, L.post_mlp_w.data(), nullptr, out, ActType::F32, s);
  }

  // x [N,D] through blocks [l0, l1), in place, as DecoderModel::run_blocks (a and m: scratch).
  void run_blocks(const DecoderConfig& c, int64_t l0, int64_t l1, float* xs, int64_t B, int64_t T, cudaStream_t s) {
    const int64_t N = B * T, ND = N * c.d_model;
    for (int64_t l = l0; l < l1; ++l) {
      attn_out(c, l, xs, B, T, a.data(), s);
      if (c.parallel_residual) {
        mlp_out(c, l, xs, N, m.data(), s);
        add_f32(m.data(), a.data(), ND, s);
        add_f32(xs, m.data(), ND, s);
        continue;
      }
      add_f32(xs, a.data(), ND, s);
      mlp_out(c, l, xs, N, a.data(), s);
      add_f32(xs, a.data(), ND, s);
    }
  }
};

DecoderCudaModel::DecoderCudaModel(const DecoderModel& cpu, ActType precision)
    : cfg_(cpu.config()), precision_(precision), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.act = precision;
  weights_identity_ = cpu.weights_identity();
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size;
  const cudaStream_t s = m.stream;
  upload_f32(m.embed, cpu.weights().load("embed.weight", {V, D}), s);
  if (cfg_.learned_positions) upload_f32(m.pos, cpu.position_embeddings(), s);
  m.inv_global = cpu.inverse_frequencies(false);
  m.inv_local = cpu.inverse_frequencies(true);
  for (const DecoderLayerWeights& w : cpu.layer_weights()) {
    Impl::Layer L;
    for (auto [dst, src] : {std::pair{&L.ln1_w, &w.ln1_w}, {&L.ln1_b, &w.ln1_b}, {&L.ln2_w, &w.ln2_w},
                            {&L.ln2_b, &w.ln2_b}, {&L.post_attn_w, &w.post_attn_w}, {&L.post_mlp_w, &w.post_mlp_w},
                            {&L.q_norm, &w.q_norm}, {&L.k_norm, &w.k_norm}, {&L.b_qkv, &w.b_qkv}, {&L.b_o, &w.b_o},
                            {&L.b_in, &w.b_in}, {&L.b_out, &w.b_out}})
      upload_f32(*dst, *src, s);
    upload_act(L.w_qkv, w.w_qkv, precision, s);
    upload_act(L.w_o, w.w_o, precision, s);
    upload_act(L.w_in, w.w_in, precision, s);
    upload_act(L.w_out, w.w_out, precision, s);
    m.layers.push_back(std::move(L));
  }
  SAE_ASSERT(cfg_.head_dim <= kMaxDecoderHeadDim, "head_dim beyond the CUDA attention kernel");
}

DecoderCudaModel::DecoderCudaModel(std::unique_ptr<const DecoderModel> full, ActType precision)
    : DecoderCudaModel(*full, precision) {
  SAE_ASSERT(full->is_full(), "a full model (load_decoder_full)");
  const FinalNorm f = full->final_norm();
  const size_t D = size_t(cfg_.d_model);
  impl_->lnf_w.upload(std::vector<float>(f.weight, f.weight + D), impl_->stream);
  if (f.bias) impl_->lnf_b.upload(std::vector<float>(f.bias, f.bias + D), impl_->stream);
  host_ = std::move(full);
}

DecoderCudaModel::~DecoderCudaModel() = default;

std::string DecoderCudaModel::describe() const {
  nlohmann::json j = cfg_.to_json();
  j["backend"] = "cuda";
  j["precision"] = to_string(precision_);
  return j.dump();
}

void DecoderCudaModel::forward_device(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                                      const std::vector<float*>& out, cudaStream_t caller) const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  SAE_CUDA_CHECK(cudaEventRecord(m.before, caller));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(m.stream, m.before, 0));
  run_pass(tokens, B, T, hooks, out);
  SAE_CUDA_CHECK(cudaEventRecord(m.after, m.stream));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(caller, m.after, 0));
}

void DecoderCudaModel::forward_batches(int64_t n_batches, int64_t max_batch, int64_t T,
                                       const std::vector<HookPoint>& hooks, const BatchTokens& fill,
                                       const BatchActivations& use) const {
  forward_batches_overlapped(
      [this](const int32_t* tokens, int64_t B, int64_t T_, const std::vector<HookPoint>& h,
             const std::vector<float*>& out, cudaStream_t s) { forward_device(tokens, B, T_, h, out, s); },
      cfg_.d_model, cfg_.vocab_size, n_batches, max_batch, T, hooks, fill, use);
}

void DecoderCudaModel::run_pass(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                                const std::vector<float*>& out) const {
  Impl& m = *impl_;
  const cudaStream_t s = m.stream;
  const DecoderConfig& c = cfg_;
  const int64_t D = c.d_model, N = B * T, ND = N * D;
  SAE_ASSERT(out.size() == hooks.size(), "one output per hook");
  SAE_ASSERT(T >= 1 && T <= c.n_positions, "sequence length beyond n_positions");
  const int64_t n_blocks = layers_needed(hooks, c.n_layers);
  SAE_ASSERT(n_blocks <= int64_t(m.layers.size()), "hook needs a block that was not loaded");
  m.reserve(c, N);
  m.rope_for(c, T);
  auto capture = [&](HookKind kind, int64_t layer, const float* src) {
    for (size_t h = 0; h < hooks.size(); ++h)
      if (hooks[h].kind == kind && hooks[h].layer == layer)
        SAE_CUDA_CHECK(cudaMemcpyAsync(out[h], src, size_t(ND) * sizeof(float), cudaMemcpyDeviceToDevice, s));
  };
  decoder_embed(tokens, N, D, m.embed.data(), c.embed_scale, m.x.data(), s);
  capture(HookKind::Embed, -1, m.x.data());
  if (c.learned_positions) {
    m.positions_for(N, T);
    decoder_embed(m.positions.data(), N, D, m.pos.data(), 1.0f, m.a.data(), s);
    capture(HookKind::PosEmbed, -1, m.a.data());
    add_f32(m.x.data(), m.a.data(), ND, s);
  }
  for (int64_t l = 0; l < n_blocks; ++l) {
    capture(HookKind::ResidPre, l, m.x.data());
    m.attn_out(c, l, m.x.data(), B, T, m.a.data(), s);
    capture(HookKind::AttnOut, l, m.a.data());
    if (c.parallel_residual) {
      m.mlp_out(c, l, m.x.data(), N, m.m.data(), s);
      capture(HookKind::MlpOut, l, m.m.data());
      add_f32(m.m.data(), m.a.data(), ND, s);
      add_f32(m.x.data(), m.m.data(), ND, s);
    } else {
      add_f32(m.x.data(), m.a.data(), ND, s);
      capture(HookKind::ResidMid, l, m.x.data());
      m.mlp_out(c, l, m.x.data(), N, m.m.data(), s);
      capture(HookKind::MlpOut, l, m.m.data());
      add_f32(m.x.data(), m.m.data(), ND, s);
    }
    capture(HookKind::ResidPost, l, m.x.data());
  }
  for (size_t h = 0; h < hooks.size(); ++h)
    if (hooks[h].kind == HookKind::LnFinalNormalized)
      decoder_norm(m.x.data(), nullptr, N, D, c.norm, c.norm_eps, nullptr, nullptr, out[h], ActType::F32, s);
}

void DecoderCudaModel::forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                               const std::vector<float*>& out) const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  const int64_t N = B * T, ND = N * cfg_.d_model;
  for (int64_t i = 0; i < N; ++i) SAE_ASSERT(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, "token id out of range");
  m.tokens.upload(tokens, N, m.stream);
  if (m.hook_out.size() < hooks.size()) m.hook_out.resize(hooks.size());
  std::vector<float*> dev(hooks.size());
  for (size_t h = 0; h < hooks.size(); ++h) m.hook_out[h].resize(ND), dev[h] = m.hook_out[h].data();
  run_pass(m.tokens.data(), B, T, hooks, dev);
  for (size_t h = 0; h < hooks.size(); ++h)
    SAE_CUDA_CHECK(cudaMemcpyAsync(out[h], dev[h], size_t(ND) * sizeof(float), cudaMemcpyDeviceToHost, m.stream));
  SAE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
}

// DecoderModel::forward_final (decoder.cpp) step for step: the model up to the hook runs once;
// what the hook sees is the residual stream (x), a term about to be added to it (side), or the
// normalised final residual; each edit gets its own copy (v), through host memory when the edit
// is a function, then the rest of the model and the final norm.
void DecoderCudaModel::forward_final(const int32_t* tokens, int64_t B, int64_t T, const HookPoint& hook,
                                     const std::vector<ActivationEdit>& edits, const std::vector<float*>& final) const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  const DecoderConfig& c = cfg_;
  const int64_t D = c.d_model, N = B * T, ND = N * D, L = c.n_layers, l = hook.layer;
  SAE_ASSERT(is_full(), "forward_final needs the full model (load_transformer_full_cuda)");
  SAE_ASSERT(edits.size() == final.size(), "one output per edit");
  SAE_ASSERT(T >= 1 && T <= c.n_positions, "sequence length beyond n_positions");
  SAE_ASSERT(hook.layer < L, "hook layer beyond the model");
  SAE_ASSERT(!(hook.kind == HookKind::ResidMid && c.parallel_residual), "no hook_resid_mid with a parallel residual");
  SAE_ASSERT(!(hook.kind == HookKind::PosEmbed && !c.learned_positions), "no hook_pos_embed with rotary positions");
  for (int64_t i = 0; i < N; ++i) SAE_ASSERT(tokens[i] >= 0 && tokens[i] < c.vocab_size, "token id out of range");
  const cudaStream_t s = m.stream;
  const bool par = c.parallel_residual;
  const size_t bytes = size_t(ND) * sizeof(float);
  m.reserve(c, N);
  m.rope_for(c, T);
  m.tokens.upload(tokens, N, s);
  DeviceBuffer<float> x(ND), side(ND), v(ND), other(par ? ND : 0);  // [N,D] each
  decoder_embed(m.tokens.data(), N, D, m.embed.data(), c.embed_scale, x.data(), s);
  if (c.learned_positions) {
    m.positions_for(N, T);
    decoder_embed(m.positions.data(), N, D, m.pos.data(), 1.0f, side.data(), s);
  } else {
    side.zero(s);
  }

  enum class Mode { Residual, Side, Normalized } mode = Mode::Residual;
  int64_t resume = L;     // first whole block after the hook
  bool then_mlp = false;  // block l's MLP sublayer follows the hook (sequential blocks)
  auto to_block = [&](int64_t upto) {
    add_f32(x.data(), side.data(), ND, s);
    m.run_blocks(c, 0, upto, x.data(), B, T, s);
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
      if (par) m.mlp_out(c, l, x.data(), N, other.data(), s);
      m.attn_out(c, l, x.data(), B, T, side.data(), s);
      if (hook.kind == HookKind::ResidMid) add_f32(x.data(), side.data(), ND, s);
      mode = hook.kind == HookKind::ResidMid ? Mode::Residual : Mode::Side;
      then_mlp = !par, resume = l + 1;
      break;
    case HookKind::MlpOut:
      to_block(l);
      m.attn_out(c, l, x.data(), B, T, par ? other.data() : side.data(), s);
      if (!par) add_f32(x.data(), side.data(), ND, s);
      m.mlp_out(c, l, x.data(), N, side.data(), s);
      mode = Mode::Side, resume = l + 1;
      break;
    case HookKind::ResidPost:
      to_block(l + 1);
      resume = l + 1;
      break;
    case HookKind::LnFinalNormalized:
      to_block(L);
      decoder_norm(x.data(), nullptr, N, D, c.norm, c.norm_eps, nullptr, nullptr, side.data(), ActType::F32, s);
      mode = Mode::Normalized;
      break;
  }

  const FinalNorm fn = host_->final_norm();
  std::vector<float> host(static_cast<size_t>(ND));
  for (size_t e = 0; e < edits.size(); ++e) {
    const float* hooked = mode == Mode::Residual ? x.data() : side.data();
    if (edits[e] || mode == Mode::Normalized) {  // the edit runs on the host
      SAE_CUDA_CHECK(cudaMemcpyAsync(host.data(), hooked, bytes, cudaMemcpyDeviceToHost, s));
      SAE_CUDA_CHECK(cudaStreamSynchronize(s));
      if (edits[e]) edits[e](host.data(), N);
      if (mode == Mode::Normalized) {  // the final norm's affine map, on the host as the CPU model applies it
        float* o = final[e];
        for (int64_t n = 0; n < N; ++n)
          for (int64_t k = 0; k < D; ++k) {
            const float t = host[size_t(n * D + k)];
            o[n * D + k] = fn.bias ? t * fn.weight[k] + fn.bias[k] : t * fn.weight[k];
          }
        continue;
      }
      SAE_CUDA_CHECK(cudaMemcpyAsync(v.data(), host.data(), bytes, cudaMemcpyHostToDevice, s));
    } else {
      SAE_CUDA_CHECK(cudaMemcpyAsync(v.data(), hooked, bytes, cudaMemcpyDeviceToDevice, s));
    }
    if (mode == Mode::Side) {
      // Parallel: (mlp + attn) + x, whichever of the two was edited.
      if (par && (hook.kind == HookKind::AttnOut || hook.kind == HookKind::MlpOut))
        add_f32(v.data(), other.data(), ND, s);
      add_f32(v.data(), x.data(), ND, s);
    }
    if (then_mlp) {
      m.mlp_out(c, l, v.data(), N, m.a.data(), s);
      add_f32(v.data(), m.a.data(), ND, s);
    }
    m.run_blocks(c, resume, L, v.data(), B, T, s);
    decoder_norm(v.data(), nullptr, N, D, c.norm, c.norm_eps, m.lnf_w.data(), m.ptr(m.lnf_b), m.a.data(), ActType::F32,
                 s);
    SAE_CUDA_CHECK(cudaMemcpyAsync(final[e], m.a.data(), bytes, cudaMemcpyDeviceToHost, s));
    SAE_CUDA_CHECK(cudaStreamSynchronize(s));  // `host` and m.a are reused by the next edit
  }
}

std::unique_ptr<DecoderCudaModel> load_transformer_cuda(const std::string& model_dir,
                                                        const std::vector<std::string>& hook_names, ActType precision) {
  const std::unique_ptr<DecoderModel> cpu = load_decoder(model_dir, hook_names);
  return std::make_unique<DecoderCudaModel>(*cpu, precision);
}

std::unique_ptr<DecoderCudaModel> load_transformer_full_cuda(const std::string& model_dir, ActType precision) {
  return std::make_unique<DecoderCudaModel>(std::unique_ptr<const DecoderModel>(load_decoder_full(model_dir)),
                                            precision);
}

}  // namespace saepipe::cuda
