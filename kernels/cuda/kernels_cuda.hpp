// The CUDA kernels of saepipe (namespace saepipe::cuda): the ops of kernels/kernels.hpp with
// the same names and argument order, on device pointers, with a stream last (matmul also
// takes its precision and cuBLAS handle before the stream). kernels/cpu/ is the reference;
// tests/gpu/test_cuda_kernels.cpp checks every op against it. All matrices are row-major.
//
// Shape legend:  N tokens (rows of a batch), D d_model (= d_in), F latents (= d_sae),
//                K top-k per token.
//
// Determinism: every op here gives bit-identical results run to run on the same GPU and
// launch configuration: no floating-point atomics. Per-latent gradient rows are summed in a
// fixed order (see sparse_backward.cu); reductions use fixed trees. The only atomics are
// integer ones (histograms, counters), whose results do not depend on order.
//
// Scratch memory: ops that need it take it from the stream-ordered allocator
// (cudaMallocAsync / cudaFreeAsync on their stream). keep_pool_memory() once per device makes
// that a pool hit after the first step.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.hpp"

namespace saepipe::cuda {

// ---------------------------------------------------------------- devices and memory

// Number of CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
// One rank per GPU: device = local_rank % device_count() (ranks share GPUs only when a node
// has more ranks than GPUs); makes it current and returns it. No device: internal error.
int select_device(int local_rank);
// Keeps memory freed with cudaFreeAsync in the device's default pool instead of returning
// it to the driver at each synchronisation, so per-call scratch is cheap.
void keep_pool_memory(int device);

// An owning device array of T (cudaMalloc / cudaFree), uninitialised. Every copy and fill
// names its stream: the legacy default stream does not order itself with the non-blocking
// streams saepipe computes on, so a copy there could race a kernel reading the same memory.
// (cudaMalloc and cudaFree synchronise the device: resizing never frees memory in use.)
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(int64_t n) { resize(n); }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = o.p_, n_ = o.n_;
      o.p_ = nullptr, o.n_ = 0;
    }
    return *this;
  }
  // Reallocates (contents lost) unless n equals the current size.
  void resize(int64_t n) {
    if (n == n_) return;
    reset();
    if (n > 0) SAE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), sizeof(T) * size_t(n)));
    n_ = n;
  }
  void reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr, n_ = 0;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t size() const { return n_; }
  // Copies that have completed when they return, queued on `stream` after its earlier work
  // (so they see that work's results, and any stream may use an upload afterwards).
  void upload(const T* host, int64_t n, cudaStream_t stream) {
    resize(n);
    if (n == 0) return;
    SAE_CUDA_CHECK(cudaMemcpyAsync(p_, host, sizeof(T) * size_t(n), cudaMemcpyHostToDevice, stream));
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  void upload(const std::vector<T>& host, cudaStream_t stream) { upload(host.data(), int64_t(host.size()), stream); }
  std::vector<T> download(cudaStream_t stream) const {
    std::vector<T> out(static_cast<size_t>(n_));
    if (n_ == 0) return out;
    SAE_CUDA_CHECK(cudaMemcpyAsync(out.data(), p_, sizeof(T) * size_t(n_), cudaMemcpyDeviceToHost, stream));
    SAE_CUDA_CHECK(cudaStreamSynchronize(stream));
    return out;
  }
  // Queued on `stream` (asynchronous).
  void zero(cudaStream_t stream) {
    if (n_ > 0) SAE_CUDA_CHECK(cudaMemsetAsync(p_, 0, sizeof(T) * size_t(n_), stream));
  }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// ---------------------------------------------------------------- matmul (cuBLAS)

// FP32: plain fp32. TF32: fp32 in and out, tensor cores with tf32 inputs. BF16: fp32 in and
// out, inputs rounded to bf16 on the fly (cuBLAS 32F_FAST_16BF); all accumulate in fp32.
enum class GemmPrecision { FP32, TF32, BF16 };
const char* to_string(GemmPrecision p);

// A cuBLAS handle and its 32 MiB workspace, for the device current at construction.
class Blas {
 public:
  Blas();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  cublasHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// C[M,N] = alpha * op(A) * op(B) + beta * C, as cpu::matmul (A is [M,K] or, transposed,
// [K,M]; B is [K,N] or [N,K]; leading dimensions in elements). Dimensions up to INT_MAX.
void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
            int64_t ldc, GemmPrecision precision, Blas& blas, cudaStream_t stream);
// The same with bf16 A and B, fp32 C, fp32 accumulation (the encoder GEMM of a bf16 step).
void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const __nv_bfloat16* A, int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta,
            float* C, int64_t ldc, Blas& blas, cudaStream_t stream);

// out[i] = bf16(x[i]), round to nearest even. [n]
void to_bf16(const float* x, int64_t n, __nv_bfloat16* out, cudaStream_t stream);
// out[i] = float(x[i]). [n]
void from_bf16(const __nv_bfloat16* x, int64_t n, float* out, cudaStream_t stream);

// ---------------------------------------------------------------- top-k

// Largest K topk_rows supports (the candidate buffer of its per-row radix select).
constexpr int64_t kMaxTopK = 4096;

// As cpu::topk_rows: per row of x [N,F] the K largest values and their columns, descending,
// ties to the lower column, `allowed` ([F], nullable) restricting the candidates, missing
// slots idx -1 / val 0, NaN never selected. With `col_bias` ([F], nullable) the values are
// x[n,f] + col_bias[f] (the encoder bias, fused; one float add as on the CPU). K <= kMaxTopK.
void topk_rows(const float* x, int64_t N, int64_t F, int64_t K, const uint8_t* allowed,
               int32_t* idx, float* val, cudaStream_t stream, const float* col_bias = nullptr);

// ReLU on a selection: slots with val <= 0 or NaN become empty (idx -1, val 0). [n]
void relu_slots(int32_t* idx, float* val, int64_t n, cudaStream_t stream);

// ---------------------------------------------------------------- sparse decoder

// out[N,D] = sum_j val[n,j] * W_dec[idx[n,j], :] (+ b_dec when not null), as cpu::sparse_decode.
void sparse_decode(const int32_t* idx, const float* val, int64_t N, int64_t K,
                   const float* W_dec, const float* b_dec, int64_t D, float* out,
                   cudaStream_t stream);
// As cpu::sparse_decode_f64: the same sum without b_dec in float64, out[N,D] (a latent shard's
// part of a reconstruction; the products of floats are exact in double, the adds in slot
// order: bit-identical to the CPU's).
void sparse_decode_f64(const int32_t* idx, const float* val, int64_t N, int64_t K, const float* W_dec, int64_t D,
                       double* out, cudaStream_t stream);

// As cpu::sparse_decode_backward: dval [N,K] (0 on empty slots) and grad_W_dec [F,D] += the
// per-latent sums, accumulated in double in increasing token order per latent. A float
// overload adds the double sums into a float gradient.
void sparse_decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N,
                            int64_t K, const float* W_dec, int64_t D, int64_t F, float* dval,
                            double* grad_W_dec, cudaStream_t stream);
void sparse_decode_backward(const int32_t* idx, const float* val, const float* g, int64_t N,
                            int64_t K, const float* W_dec, int64_t D, int64_t F, float* dval,
                            float* grad_W_dec, cudaStream_t stream);

// As cpu::sparse_encode_backward: grad_W_encT [F,D] and grad_b_enc [F] += the per-latent sums
// of dpre[n,j] * xc[n] and of dpre[n,j]. Float overload as above.
void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, double* grad_W_encT,
                            double* grad_b_enc, cudaStream_t stream);
void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, float* grad_W_encT,
                            float* grad_b_enc, cudaStream_t stream);
// Float weight gradient, double per-latent sums (the step keeps them for the b_dec term).
void sparse_encode_backward(const int32_t* idx, const float* dpre, const float* xc, int64_t N,
                            int64_t K, int64_t D, int64_t F, float* grad_W_encT,
                            double* grad_b_enc, cudaStream_t stream);

// out[f] += sum over slots s with idx[s] = f of coef[s] (double, increasing s per latent, as
// the sums above). idx, coef [N,K], out [F].
void per_latent_sums(const int32_t* idx, const float* coef, int64_t N, int64_t K, int64_t F, double* out,
                     cudaStream_t stream);

// ---------------------------------------------------------------- optimiser

// As cpu::adam_step (same operations in the same order, no contraction into FMA, so the
// result matches the CPU's to the last bit on IEEE hardware). [n]
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, int64_t t, cudaStream_t stream);
// As cpu::project_out_parallel. W, grad [F,D].
void project_out_parallel(const float* W, float* grad, int64_t F, int64_t D, cudaStream_t stream);
// As cpu::normalize_rows. W [F,D].
void normalize_rows(float* W, int64_t F, int64_t D, cudaStream_t stream);
// Fused decoder update, one pass per row: project_out_parallel(W, grad), adam_step on W's
// rows, normalize_rows(W) — the CPU's three calls in one kernel. grad is left projected.
void adam_step_unit_rows(float* W, float* grad, float* m, float* v, int64_t F, int64_t D,
                         float lr, float beta1, float beta2, float eps, int64_t t,
                         cudaStream_t stream);

// ---------------------------------------------------------------- small helpers of the step

// xc[n,:] = x[n,:] - b[:] (fp32), and its bf16 copy when xc_bf16 is not null. x, xc [N,D].
void center_rows(const float* x, const float* b, int64_t N, int64_t D, float* xc,
                 __nv_bfloat16* xc_bf16, cudaStream_t stream);
// out[d] += scale * sum_r w[r] * a[r,d] (w null: 1), summed in a fixed order (blocks of rows,
// then the blocks in order) in double. a [R,D], w [R], out [D].
void weighted_column_sums(const double* w, const float* a, int64_t R, int64_t D, double scale,
                          double* out, cudaStream_t stream);
// out[i] += float(x[i]) or out[i] += x[i] (double). [n]
void add_into(const double* x, int64_t n, float* out, cudaStream_t stream);
void add_into(const double* x, int64_t n, double* out, cudaStream_t stream);

}  // namespace saepipe::cuda
