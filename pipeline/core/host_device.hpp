// SAEPIPE_HD marks small functions that the CPU code and the CUDA kernels share, so a rule is
// written once: __host__ __device__ under nvcc, nothing elsewhere.
#pragma once
#if defined(__CUDACC__)
#define SAEPIPE_HD __host__ __device__
#else
#define SAEPIPE_HD
#endif
