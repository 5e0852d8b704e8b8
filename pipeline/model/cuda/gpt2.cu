// Gpt2CudaModel and Gpt2CudaHarvest (gpt2.hpp): weights on the device, cuBLASLt matmuls
// with fused epilogues, the forward pass and the asynchronous harvest loop. Every CUDA and
// cuBLAS call is checked (cuda_check.hpp).
//
// Row-major linear maps in cuBLASLt (column-major): Y[N,O] = X[N,K] W[K,O] (+ b) with W in
// Conv1D layout [K,O] is, column-major, Y^T[O,N] = W^T[O,K] X^T[K,N]: A = W as an O x K
// matrix (ld O), B = X as K x N (ld K), D = Y as O x N (ld O), no transposes; the bias has
// D's O rows.
//
// Shape legend: B sequences, T positions, N = B*T rows, C d_model, H heads, hs = C/H,
// I MLP width, V vocab, P n_positions, K / O a linear map's inputs / outputs.
#include <cublasLt.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "kernels/cuda/cuda_check.hpp"
#include "pipeline/model/cuda/gpt2.hpp"
#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/model/safetensors.hpp"

namespace saepipe::cuda {

namespace {

cudaDataType_t cuda_type(ActType t) {
  switch (t) {
    case ActType::F32: return CUDA_R_32F;
    case ActType::BF16: return CUDA_R_16BF;
    case ActType::F16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

enum class Epi { None, Bias, BiasGelu };
const char* to_string(Epi e) { return e == Epi::None ? "none" : e == Epi::Bias ? "bias" : "bias+gelu"; }

void upload_act(DeviceBuffer<uint8_t>& buf, const std::vector<float>& v, ActType t, cudaStream_t s) {
  std::vector<uint8_t> bytes(v.size() * act_bytes(t));
  convert_from_f32(v.data(), int64_t(v.size()), t, bytes.data());
  buf.upload(bytes, s);
}

void check_tokens(const int32_t* tokens, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; ++i) SAE_ASSERT(tokens[i] >= 0 && tokens[i] < V, "token id out of range");
}

}  // namespace

ActType parse_precision(const std::string& name) {
  if (name == "fp32" || name == "float32") return ActType::F32;
  if (name == "bf16" || name == "bfloat16") return ActType::BF16;
  if (name == "fp16" || name == "float16") return ActType::F16;
  user_error("precision \"" + name + "\" is not one of fp32, bf16, fp16");
}

// ---------------------------------------------------------------- device weights

struct Gpt2CudaModel::DeviceBlock {
  DeviceBuffer<float> ln1_w, ln1_b, ln2_w, ln2_b, proj_b, fc_proj_b;         // fp32: [C] each
  DeviceBuffer<uint8_t> attn_w, attn_b, proj_w, fc_w, fc_b, fc_proj_w;        // activation type
  DeviceBuffer<float> wte, wpe, lnf_w, lnf_b;                                 // embeddings_ only
};

// ---------------------------------------------------------------- cuBLASLt plans + scratch

struct Gpt2CudaModel::Impl {
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, int, bool>;  // N K O in out epi accumulate
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool fused = false;  // the requested epilogue runs inside the matmul
  };

  cublasLtHandle_t lt = nullptr;
  DeviceBuffer<uint8_t> workspace;
  std::map<Key, Plan> plans;
  bool fuse = true;

  // Per-pass scratch, for `capacity` rows.
  int64_t capacity = 0;
  DeviceBuffer<float> x, tmp, tmp2;           // [N,C] fp32: residual stream, sublayer outputs, pos embeddings
  DeviceBuffer<uint8_t> ln, qkv, att, hid;    // [N,C] [N,3C] [N,C] [N,I] activation type

  // The stream every pass runs on, the events that order it with a caller's stream, and the
  // lock held while a pass is enqueued (forward() also holds it until its results are back).
  std::mutex mu;
  cudaStream_t stream = nullptr;
  cudaEvent_t before = nullptr, after = nullptr;
  DeviceBuffer<int32_t> tokens;
  std::vector<DeviceBuffer<float>> hook_out;

  Impl() {
    SAE_CUBLAS_CHECK(cublasLtCreate(&lt));
    workspace.resize(int64_t(32) << 20);  // Hopper's best kernels ask for up to 32 MiB
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

  void reserve(int64_t N, int64_t C, int64_t I, ActType t) {
    if (N <= capacity) return;
    const int64_t e = int64_t(act_bytes(t));
    x.resize(N * C), tmp.resize(N * C), tmp2.resize(N * C);
    ln.resize(N * C * e), qkv.resize(N * 3 * C * e), att.resize(N * C * e), hid.resize(N * I * e);
    capacity = N;
  }

  // A plan with the requested epilogue when cuBLASLt has an algorithm for it, else with none.
  Plan& plan(const Key& key, const void* bias) {
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    const auto [N, K, O, in_i, out_i, epi_i, accumulate] = key;
    const ActType in = ActType(in_i), out = ActType(out_i);
    const Epi epi = Epi(epi_i);
    Plan p;
    auto try_epilogue = [&](cublasLtEpilogue_t e) -> bool {
      if (p.op) cublasLtMatmulDescDestroy(p.op), p.op = nullptr;
      SAE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      const cublasOperation_t n = CUBLAS_OP_N;
      SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &n, sizeof n));
      SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n));
      SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
      if (e != CUBLASLT_EPILOGUE_DEFAULT)
        SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
      cublasLtMatmulPreference_t pref = nullptr;
      SAE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      const uint64_t ws = uint64_t(workspace.size());
      SAE_CUBLAS_CHECK(
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      // Not checked as an error: "no algorithm" (NOT_SUPPORTED) is an answer here.
      const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
      SAE_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
      if (st != CUBLAS_STATUS_SUCCESS || found == 0 || result.state != CUBLAS_STATUS_SUCCESS) return false;
      p.algo = result.algo;
      return true;
    };
    SAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, cuda_type(in), uint64_t(O), uint64_t(K), O));
    SAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, cuda_type(in), uint64_t(K), uint64_t(N), K));
    SAE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, cuda_type(out), uint64_t(O), uint64_t(N), O));
    const cublasLtEpilogue_t want = epi == Epi::BiasGelu ? CUBLASLT_EPILOGUE_GELU_BIAS
                                    : epi == Epi::Bias   ? CUBLASLT_EPILOGUE_BIAS
                                                         : CUBLASLT_EPILOGUE_DEFAULT;
    p.fused = fuse && want != CUBLASLT_EPILOGUE_DEFAULT && try_epilogue(want);
    if (!p.fused && !try_epilogue(CUBLASLT_EPILOGUE_DEFAULT))
      internal_error("cuBLASLt has no algorithm for a " + std::to_string(N) + "x" + std::to_string(K) + " by " +
                     std::to_string(K) + "x" + std::to_string(O) + " matmul (" + cuda::to_string(in) + " -> " +
                     cuda::to_string(out) + ")");
    return plans.emplace(key, p).first->second;
  }

  // Y[N,O] (type out) = X[N,K] W[K,O] (type in) [+ Y when accumulate] [+ bias[O] (type out)]
  // [then GELU], fp32 accumulation.
  void linear(const void* X, const void* W, const void* bias, void* Y, int64_t N, int64_t K, int64_t O, ActType in,
              ActType out, Epi epi, bool accumulate, bool gelu_tanh, cudaStream_t stream) {
    if (N == 0) return;
    // cuBLASLt's GELU is the tanh form, and may approximate tanh (about 2^-11 relative): exact-erf
    // GELU, and any GELU in fp32 (held to 1e-5 of the CPU), run as the own kernel after a bias
    // epilogue; bf16 / fp16 keep the fused GELU, well inside their rounding.
    const Epi asked = (epi == Epi::BiasGelu && (!gelu_tanh || in == ActType::F32)) ? Epi::Bias : epi;
    Plan& p = plan(Key{N, K, O, int(in), int(out), int(asked), accumulate}, bias);
    if (p.fused)
      SAE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    SAE_CUBLAS_CHECK(cublasLtMatmul(lt, p.op, &alpha, W, p.a, X, p.b, &beta, Y, p.c, Y, p.c, &p.algo, workspace.data(),
                                    size_t(workspace.size()), stream));
    const bool need_bias = !p.fused && asked != Epi::None;
    const bool need_gelu = epi == Epi::BiasGelu && !(p.fused && asked == Epi::BiasGelu);
    if (need_bias || need_gelu) bias_gelu(Y, need_bias ? bias : nullptr, out, N, O, need_gelu, gelu_tanh, stream);
  }

  std::string report() const {
    std::ostringstream s;
    for (const auto& [key, p] : plans) {
      const auto [N, K, O, in, out, epi, acc] = key;
      s << "matmul " << N << "x" << K << " . " << K << "x" << O << " " << cuda::to_string(ActType(in)) << "->"
        << cuda::to_string(ActType(out)) << " epilogue " << to_string(Epi(epi)) << (acc ? " +residual" : "") << ": "
        << (Epi(epi) == Epi::None ? "plain" : p.fused ? "fused" : "fallback (separate bias/GELU pass)") << "\n";
    }
    return s.str();
  }
};

// ---------------------------------------------------------------- the model

Gpt2CudaModel::Gpt2CudaModel(const Gpt2Config& cfg, const Checkpoint& ck, int64_t n_blocks, bool with_ln_f,
                             const Gpt2CudaOptions& opt)
    : Gpt2Base(cfg), opt_(opt), has_ln_f_(with_ln_f) {
  const int64_t C = cfg.n_embd, I = cfg.n_inner, H = cfg.n_head;
  if (C / H > kMaxHeadSize)
    user_error("the CUDA GPT-2 supports head sizes up to " + std::to_string(kMaxHeadSize) + "; this model has " +
               std::to_string(C / H));
  impl_ = std::make_unique<Impl>();
  impl_->fuse = opt.fuse_epilogues;
  const ActType t = opt.precision;
  const cudaStream_t s = impl_->stream;  // the model's own stream (see forward_device)
  // Hugging Face saves GPT2Model without a prefix and GPT2LMHeadModel with "transformer.".
  const std::string p = ck.has("wte.weight") ? "" : ck.has("transformer.wte.weight") ? "transformer." : "";
  weights_identity_ = ck.identity();
  embeddings_ = std::make_unique<DeviceBlock>();
  wte_host_ = ck.load(p + "wte.weight", {cfg.vocab_size, C});
  embeddings_->wte.upload(wte_host_, s);
  embeddings_->wpe.upload(ck.load(p + "wpe.weight", {cfg.n_positions, C}), s);
  for (int64_t l = 0; l < n_blocks; ++l) {
    const std::string h = p + "h." + std::to_string(l) + ".";
    auto b = std::make_unique<DeviceBlock>();
    b->ln1_w.upload(ck.load(h + "ln_1.weight", {C}), s);
    b->ln1_b.upload(ck.load(h + "ln_1.bias", {C}), s);
    upload_act(b->attn_w, ck.load(h + "attn.c_attn.weight", {C, 3 * C}), t, s);
    upload_act(b->attn_b, ck.load(h + "attn.c_attn.bias", {3 * C}), t, s);  // the bias has D's type
    upload_act(b->proj_w, ck.load(h + "attn.c_proj.weight", {C, C}), t, s);
    b->proj_b.upload(ck.load(h + "attn.c_proj.bias", {C}), s);             // D is fp32 (attn_out)
    b->ln2_w.upload(ck.load(h + "ln_2.weight", {C}), s);
    b->ln2_b.upload(ck.load(h + "ln_2.bias", {C}), s);
    upload_act(b->fc_w, ck.load(h + "mlp.c_fc.weight", {C, I}), t, s);
    upload_act(b->fc_b, ck.load(h + "mlp.c_fc.bias", {I}), t, s);
    upload_act(b->fc_proj_w, ck.load(h + "mlp.c_proj.weight", {I, C}), t, s);
    b->fc_proj_b.upload(ck.load(h + "mlp.c_proj.bias", {C}), s);
    blocks_.push_back(std::move(b));
  }
  if (with_ln_f) {
    lnf_w_host_ = ck.load(p + "ln_f.weight", {C});
    lnf_b_host_ = ck.load(p + "ln_f.bias", {C});
    embeddings_->lnf_w.upload(lnf_w_host_, s);
    embeddings_->lnf_b.upload(lnf_b_host_, s);
  }
}

Gpt2CudaModel::~Gpt2CudaModel() = default;

std::string Gpt2CudaModel::describe() const {
  nlohmann::json j = config_json();
  j["backend"] = "cuda";
  j["precision"] = to_string(opt_.precision);
  return j.dump();
}

std::string Gpt2CudaModel::gemm_report() const { return impl_->report(); }

void Gpt2CudaModel::forward_device(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                                   const std::vector<float*>& out, cudaStream_t caller) const {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.mu);
  // Every pass runs on the model's own stream, which holds the per-pass scratch and the
  // cuBLASLt workspace: passes asked for on different streams never share them at once.
  SAE_CUDA_CHECK(cudaEventRecord(im.before, caller));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(im.stream, im.before, 0));
  run_pass(tokens, B, T, hooks, out, im.stream);
  SAE_CUDA_CHECK(cudaEventRecord(im.after, im.stream));
  SAE_CUDA_CHECK(cudaStreamWaitEvent(caller, im.after, 0));
}

void Gpt2CudaModel::run_pass(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                             const std::vector<float*>& out, cudaStream_t s) const {
  const int64_t C = cfg_.n_embd, N = B * T, I = cfg_.n_inner, H = cfg_.n_head, L = cfg_.n_layer;
  const size_t row_bytes = size_t(N * C) * sizeof(float);
  SAE_ASSERT(out.size() == hooks.size(), "one output per hook");
  SAE_ASSERT(T >= 1 && T <= cfg_.n_positions, "sequence length beyond n_positions");
  const int64_t n_blocks = layers_needed(hooks, L);
  SAE_ASSERT(n_blocks <= blocks_loaded(), "hook needs a block that was not loaded");
  if (N == 0) return;
  Impl& im = *impl_;
  const ActType at = opt_.precision;
  im.reserve(N, C, I, at);
  auto wants = [&](HookKind kind, int64_t layer) {
    for (const HookPoint& h : hooks)
      if (h.kind == kind && h.layer == layer) return true;
    return false;
  };
  auto capture = [&](HookKind kind, int64_t layer, const float* src) {
    for (size_t h = 0; h < hooks.size(); ++h)
      if (hooks[h].kind == kind && hooks[h].layer == layer)
        SAE_CUDA_CHECK(cudaMemcpyAsync(out[h], src, row_bytes, cudaMemcpyDeviceToDevice, s));
  };
  float* x = im.x.data();
  float* tmp = im.tmp.data();
  void* ln = im.ln.data();
  const double eps = cfg_.layer_norm_epsilon;
  const float scale = cfg_.scale_attn_weights ? 1.0f / std::sqrt(float(C / H)) : 1.0f;

  const bool tok_hook = wants(HookKind::Embed, -1), pos_hook = wants(HookKind::PosEmbed, -1);
  gpt2_embed(tokens, B, T, C, embeddings_->wte.data(), embeddings_->wpe.data(), x, tok_hook ? tmp : nullptr,
             pos_hook ? im.tmp2.data() : nullptr, s);
  capture(HookKind::Embed, -1, tmp);
  capture(HookKind::PosEmbed, -1, im.tmp2.data());
  if (n_blocks > 0)
    residual_layernorm(x, nullptr, N, C, blocks_[0]->ln1_w.data(), blocks_[0]->ln1_b.data(), eps, ln, at, s);

  for (int64_t l = 0; l < n_blocks; ++l) {
    const DeviceBlock& b = *blocks_[size_t(l)];
    capture(HookKind::ResidPre, l, x);  // ln holds ln_1(x) already
    im.linear(ln, b.attn_w.data(), b.attn_b.data(), im.qkv.data(), N, C, 3 * C, at, at, Epi::Bias, false,
              cfg_.gelu_tanh, s);
    causal_attention(im.qkv.data(), im.att.data(), at, B, T, C, H, scale, s);
    if (wants(HookKind::AttnOut, l)) {
      im.linear(im.att.data(), b.proj_w.data(), b.proj_b.data(), tmp, N, C, C, at, ActType::F32, Epi::Bias, false,
                cfg_.gelu_tanh, s);
      capture(HookKind::AttnOut, l, tmp);
      residual_layernorm(x, tmp, N, C, b.ln2_w.data(), b.ln2_b.data(), eps, ln, at, s);
    } else {  // x += att W + b inside the matmul
      im.linear(im.att.data(), b.proj_w.data(), b.proj_b.data(), x, N, C, C, at, ActType::F32, Epi::Bias, true,
                cfg_.gelu_tanh, s);
      residual_layernorm(x, nullptr, N, C, b.ln2_w.data(), b.ln2_b.data(), eps, ln, at, s);
    }
    capture(HookKind::ResidMid, l, x);

    im.linear(ln, b.fc_w.data(), b.fc_b.data(), im.hid.data(), N, C, I, at, at, Epi::BiasGelu, false,
              cfg_.gelu_tanh, s);
    const bool next = l + 1 < n_blocks;  // the next block's ln_1, fused with the residual add
    const float* next_w = next ? blocks_[size_t(l + 1)]->ln1_w.data() : nullptr;
    const float* next_b = next ? blocks_[size_t(l + 1)]->ln1_b.data() : nullptr;
    if (wants(HookKind::MlpOut, l)) {
      im.linear(im.hid.data(), b.fc_proj_w.data(), b.fc_proj_b.data(), tmp, N, I, C, at, ActType::F32, Epi::Bias,
                false, cfg_.gelu_tanh, s);
      capture(HookKind::MlpOut, l, tmp);
      if (next) residual_layernorm(x, tmp, N, C, next_w, next_b, eps, ln, at, s);
      else add_f32(x, tmp, N * C, s);
    } else {
      im.linear(im.hid.data(), b.fc_proj_w.data(), b.fc_proj_b.data(), x, N, I, C, at, ActType::F32, Epi::Bias, true,
                cfg_.gelu_tanh, s);
      if (next) residual_layernorm(x, nullptr, N, C, next_w, next_b, eps, ln, at, s);
    }
    capture(HookKind::ResidPost, l, x);
  }
  for (size_t h = 0; h < hooks.size(); ++h)
    if (hooks[h].kind == HookKind::LnFinalNormalized)
      residual_layernorm(x, nullptr, N, C, nullptr, nullptr, eps, out[h], ActType::F32, s);
}

void Gpt2CudaModel::forward(const int32_t* tokens, int64_t B, int64_t T, const std::vector<HookPoint>& hooks,
                            const std::vector<float*>& out) const {
  const int64_t C = cfg_.n_embd, N = B * T;
  SAE_ASSERT(out.size() == hooks.size(), "one output per hook");
  check_tokens(tokens, N, cfg_.vocab_size);
  if (N == 0) return;
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.mu);
  im.tokens.resize(std::max<int64_t>(N, im.tokens.size()));
  SAE_CUDA_CHECK(cudaMemcpyAsync(im.tokens.data(), tokens, size_t(N) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                 im.stream));
  if (im.hook_out.size() < hooks.size()) im.hook_out.resize(hooks.size());
  std::vector<float*> dev(hooks.size());
  for (size_t h = 0; h < hooks.size(); ++h) {
    if (im.hook_out[h].size() < N * C) im.hook_out[h].resize(N * C);
    dev[h] = im.hook_out[h].data();
  }
  run_pass(im.tokens.data(), B, T, hooks, dev, im.stream);
  for (size_t h = 0; h < hooks.size(); ++h)
    SAE_CUDA_CHECK(cudaMemcpyAsync(out[h], dev[h], size_t(N * C) * sizeof(float), cudaMemcpyDeviceToHost, im.stream));
  SAE_CUDA_CHECK(cudaStreamSynchronize(im.stream));
}

void Gpt2CudaModel::forward_batches(int64_t n_batches, int64_t max_batch, int64_t T,
                                    const std::vector<HookPoint>& hooks, const BatchTokens& fill,
                                    const BatchActivations& use) const {
  forward_batches_overlapped(
      [this](const int32_t* tokens, int64_t B, int64_t T_, const std::vector<HookPoint>& h,
             const std::vector<float*>& out, cudaStream_t s) { forward_device(tokens, B, T_, h, out, s); },
      d_model(), vocab_size(), n_batches, max_batch, T, hooks, fill, use);
}

void Gpt2CudaModel::forward_final(const int32_t*, int64_t, int64_t, const HookPoint&, const std::vector<ActivationEdit>&,
                                  const std::vector<float*>&) const {
  internal_error("forward_final is not implemented on the CUDA GPT-2 (use the CPU model: load_transformer_full)");
}

std::unique_ptr<Gpt2CudaModel> load_gpt2_cuda(const std::string& model_dir, const std::vector<std::string>& hook_names,
                                              const Gpt2CudaOptions& opt) {
  const Gpt2Config cfg = read_model_config(model_dir);
  std::vector<HookPoint> hooks;
  bool with_ln_f = false;
  for (const std::string& n : hook_names) {
    hooks.push_back(parse_hook(n, cfg.n_layer));
    with_ln_f = with_ln_f || hooks.back().kind == HookKind::LnFinalNormalized;
  }
  const Checkpoint ckpt(model_dir);
  return std::make_unique<Gpt2CudaModel>(cfg, ckpt, layers_needed(hooks, cfg.n_layer), with_ln_f, opt);
}

// ---------------------------------------------------------------- the harvest loop

Gpt2CudaHarvest::Gpt2CudaHarvest(const Gpt2CudaModel& model, std::vector<HookPoint> hooks, int64_t max_batch,
                                 int64_t T, int slots)
    : HarvestLoop(
          [&model](const int32_t* tokens, int64_t B, int64_t T_, const std::vector<HookPoint>& h,
                   const std::vector<float*>& out, cudaStream_t s) { model.forward_device(tokens, B, T_, h, out, s); },
          model.d_model(), model.vocab_size(), std::move(hooks), max_batch, T, slots) {}

}  // namespace saepipe::cuda
