// Devices, the cuBLAS handle, dense matmul through cuBLAS and bf16 conversions.
//
// Shape legend: N tokens, D d_model, F latents, K top-k. The generic GEMM uses BLAS names:
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major.
//
// Row-major to cuBLAS (column-major): a row-major X with leading dimension ld is the
// column-major X^T with the same ld, so C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: cuBLAS gets (B, A) swapped, (N, M) swapped, and each operand's
// transpose flag unchanged.
#include <climits>
#include <cstdint>
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels_cuda.hpp"

namespace saepipe::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
}

int select_device(int local_rank) {
  const int n = device_count();
  if (n == 0) internal_error("no CUDA device visible to this rank");
  const int dev = local_rank % n;
  SAE_CUDA_CHECK(cudaSetDevice(dev));
  return dev;
}

void keep_pool_memory(int device) {
  cudaMemPool_t pool;
  SAE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t threshold = UINT64_MAX;
  SAE_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
}

const char* to_string(GemmPrecision p) {
  switch (p) {
    case GemmPrecision::FP32: return "fp32";
    case GemmPrecision::TF32: return "tf32";
    case GemmPrecision::BF16: return "bf16";
  }
  return "?";
}

Blas::Blas() {
  SAE_CUBLAS_CHECK(cublasCreate(&handle_));
  // Hopper: cuBLAS asks for 32 MiB of workspace for its best kernels.
  workspace_bytes_ = size_t(32) << 20;
  SAE_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  SAE_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_, workspace_bytes_));
}

Blas::~Blas() {
  if (handle_) cublasDestroy(handle_);
  if (workspace_) cudaFree(workspace_);
}

namespace {

void check_gemm_args(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                     int64_t ldb, int64_t ldc) {
  SAE_ASSERT(M >= 0 && N >= 0 && K >= 0, "negative matmul dimension");
  SAE_ASSERT(lda >= (trans_a ? M : K) && lda >= 1, "lda too small");
  SAE_ASSERT(ldb >= (trans_b ? K : N) && ldb >= 1, "ldb too small");
  SAE_ASSERT(ldc >= N && ldc >= 1, "ldc too small");
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    SAE_ASSERT(v <= INT_MAX, "matmul dimension " + std::to_string(v) + " exceeds the cuBLAS int range");
}

void gemm_ex(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
             cudaDataType_t type_a, int64_t lda, const void* B, cudaDataType_t type_b, int64_t ldb,
             float beta, float* C, int64_t ldc, cublasComputeType_t compute, Blas& blas,
             cudaStream_t stream) {
  check_gemm_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  SAE_CUBLAS_CHECK(cublasSetStream(blas.handle(), stream));
  // cublasSetStream resets the workspace to the default one: bind ours again.
  SAE_CUBLAS_CHECK(cublasSetWorkspace(blas.handle(), blas.workspace(), blas.workspace_bytes()));
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  SAE_CUBLAS_CHECK(cublasGemmEx(blas.handle(), op_b, op_a, int(N), int(M), int(K), &alpha, B, type_b,
                                int(ldb), A, type_a, int(lda), &beta, C, CUDA_R_32F, int(ldc), compute,
                                CUBLAS_GEMM_DEFAULT));
}

__global__ void to_bf16_kernel(const float* __restrict__ x, int64_t n, __nv_bfloat16* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void from_bf16_kernel(const __nv_bfloat16* __restrict__ x, int64_t n, float* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(x[i]);
}


}  // namespace

void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
            int64_t ldc, GemmPrecision precision, Blas& blas, cudaStream_t stream) {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (precision == GemmPrecision::TF32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  if (precision == GemmPrecision::BF16) compute = CUBLAS_COMPUTE_32F_FAST_16BF;
  gemm_ex(trans_a, trans_b, M, N, K, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C, ldc,
          compute, blas, stream);
}

void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
            const __nv_bfloat16* A, int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta,
            float* C, int64_t ldc, Blas& blas, cudaStream_t stream) {
  gemm_ex(trans_a, trans_b, M, N, K, alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, beta, C, ldc,
          CUBLAS_COMPUTE_32F, blas, stream);
}

void to_bf16(const float* x, int64_t n, __nv_bfloat16* out, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative size");
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, n, out);
  SAE_CUDA_LAUNCH_CHECK();
}

void from_bf16(const __nv_bfloat16* x, int64_t n, float* out, cudaStream_t stream) {
  SAE_ASSERT(n >= 0, "negative size");
  if (n == 0) return;
  from_bf16_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, n, out);
  SAE_CUDA_LAUNCH_CHECK();
}

}  // namespace saepipe::cuda
