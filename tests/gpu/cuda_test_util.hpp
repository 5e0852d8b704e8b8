// Shared by the CUDA parity tests: the fixture (skips when there is no device, so machines
// without a GPU build and run the binary; else a non-blocking stream per test) and the
// comparisons of the tolerance rule in test_cuda_kernels.cpp.
#pragma once
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/kernels_cuda.hpp"  // device_count
#include "pipeline/core/float16.hpp"
#include "tests/unit/test_util.hpp"           // random_normal

namespace saepipe::test {

class CudaStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount reports none)";
    // Non-blocking, as the pipeline's streams: nothing orders it with the legacy default stream.
    SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream) cudaStreamDestroy(stream);
  }
  void sync() { SAE_CUDA_CHECK(cudaStreamSynchronize(stream)); }
  cudaStream_t stream = nullptr;
};

// The suite of the kernel and step tests (two files, one fixture type, as GoogleTest requires).
class Cuda : public CudaStreamTest {};

constexpr double kEpsF = std::numeric_limits<float>::epsilon();
constexpr double kEpsD = std::numeric_limits<double>::epsilon();

// Counts failures and reports the first few (a full mismatch would print millions of lines).
struct Mismatches {
  const char* what;
  int count = 0;
  void check(bool ok, size_t i, double got, double ref, double tol) {
    if (ok) return;
    if (++count <= 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got << ", want " << ref << " (tolerance " << tol << ")";
  }
  ~Mismatches() {
    if (count > 5) ADD_FAILURE() << what << ": " << count << " mismatches in all";
  }
};

template <class T>
void expect_close(const std::vector<T>& got, const std::vector<T>& ref, const std::vector<double>& mag, double rtol,
                  const char* what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  Mismatches mm{what};
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rtol * (std::abs(double(ref[i])) + (mag.empty() ? 0.0 : mag[i])) + 1e-30;
    mm.check(std::abs(double(got[i]) - double(ref[i])) <= tol, i, double(got[i]), double(ref[i]), tol);
  }
}

template <class T>
void expect_bitwise(const std::vector<T>& got, const std::vector<T>& ref, const char* what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  Mismatches mm{what};
  for (size_t i = 0; i < got.size(); ++i)
    mm.check(std::memcmp(&got[i], &ref[i], sizeof(T)) == 0, i, double(got[i]), double(ref[i]), 0.0);
}

inline std::vector<float> round_bf16(std::vector<float> v) {
  for (auto& e : v) e = bf16_to_float(float_to_bf16(e));
  return v;
}

inline std::vector<__nv_bfloat16> to_bf16_host(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = float_to_bf16(v[i]);
    std::memcpy(&out[i], &h, sizeof h);
  }
  return out;
}

}  // namespace saepipe::test
