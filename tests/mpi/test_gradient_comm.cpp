// MpiHostComm under 1-4 ranks: the in-place sum equals a plain sum of every rank's vector
// (exactly where the values and sums are exact in the wire type, within the rounding bound
// otherwise) and is bit-identical on every rank; the backend choice rule.
//
// Shape legend: n values of one gradient vector, P ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/float16.hpp"
#include "pipeline/core/gradient_comm.hpp"
#include "pipeline/core/mpi_env.hpp"

namespace saepipe {
namespace {

// Rank r's vector, reproducible on every rank from (seed, r).
std::vector<float> rank_vector(int r, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003u + uint64_t(r));
  std::normal_distribution<float> dist(0.0f, 1.0f + float(r));
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = dist(rng);
  return v;
}

// Every rank holds the same bytes: gathered on all ranks and compared with rank 0's.
void expect_same_on_every_rank(const MpiEnv& env, const std::vector<float>& v) {
  const int64_t bytes = int64_t(v.size() * sizeof(float));
  const auto all = env.allgather_bytes(v.data(), bytes);
  for (int r = 1; r < env.size(); ++r)
    EXPECT_EQ(std::memcmp(all.data(), all.data() + r * bytes, size_t(bytes)), 0)
        << "rank " << r << " holds a different result than rank 0";
}

TEST(MpiHostComm, Float32SumOfIntegersIsExact) {
  MpiEnv env;
  const int64_t n = 100003;  // odd size
  std::vector<float> data(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) data[i] = float((env.rank() + 1) * (i % 97) - 13);
  MpiHostComm comm(env, WireType::Float32);
  comm.allreduce_sum(data.data(), n);
  const int P = env.size();
  for (int64_t i = 0; i < n; ++i) {
    const float want = float((P * (P + 1) / 2) * (i % 97) - 13 * P);
    if (data[i] != want) {
      ADD_FAILURE() << "element " << i << ": got " << data[i] << ", want " << want;
      break;
    }
  }
  expect_same_on_every_rank(env, data);
}

TEST(MpiHostComm, Float32RandomMatchesPlainSum) {
  MpiEnv env;
  const int64_t n = 65537;
  auto data = rank_vector(env.rank(), n, 7);
  MpiHostComm comm(env, WireType::Float32);
  comm.start(data.data(), n, nullptr);
  comm.wait(nullptr);
  // Reference: the sum in double of every rank's vector; rounding bound of P-1 float adds.
  std::vector<double> ref(size_t(n), 0.0), mag(size_t(n), 0.0);
  for (int r = 0; r < env.size(); ++r) {
    const auto v = rank_vector(r, n, 7);
    for (int64_t i = 0; i < n; ++i) {
      ref[i] += v[i];
      mag[i] += std::abs(v[i]);
    }
  }
  const double eps = std::numeric_limits<float>::epsilon();
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; ++i)
    if (!(std::abs(data[i] - ref[i]) <= eps * env.size() * mag[i])) {
      ++bad;
      ADD_FAILURE() << "element " << i << ": got " << data[i] << ", want " << ref[i];
    }
  expect_same_on_every_rank(env, data);
}

// Float64 values travel as they are, whatever the wire type (the train step's gradient).
TEST(MpiHostComm, Float64SumsAsDoubles) {
  MpiEnv env;
  const int64_t n = 4099;
  std::vector<double> data(static_cast<size_t>(n));
  // Values a float could not hold: the sum must keep their low bits.
  for (int64_t i = 0; i < n; ++i) data[i] = double(env.rank() + 1) * (1.0 + std::ldexp(double(i % 89), -40));
  MpiHostComm comm(env, WireType::BFloat16);
  comm.allreduce_sum(data.data(), n);
  const int P = env.size();
  for (int64_t i = 0; i < n; ++i) {
    const double want = double(P * (P + 1) / 2) * (1.0 + std::ldexp(double(i % 89), -40));
    if (data[i] != want) {
      ADD_FAILURE() << "element " << i << ": got " << data[i] << ", want " << want;
      break;
    }
  }
  const int64_t bytes = n * int64_t(sizeof(double));
  const auto all = env.allgather_bytes(data.data(), bytes);
  for (int r = 1; r < P; ++r) EXPECT_EQ(std::memcmp(all.data(), all.data() + r * bytes, size_t(bytes)), 0);
}

TEST(MpiHostComm, BFloat16WireExactOnSmallIntegers) {
  MpiEnv env;
  const int64_t n = 4099;
  std::vector<float> data(static_cast<size_t>(n));
  // |sum| <= 4 * 4 * 15 < 256: every partial sum is an integer exact in bf16.
  for (int64_t i = 0; i < n; ++i) data[i] = float((env.rank() + 1) * (int(i % 31) - 15));
  MpiHostComm comm(env, WireType::BFloat16);
  comm.allreduce_sum(data.data(), n);
  const int P = env.size();
  for (int64_t i = 0; i < n; ++i) {
    const float want = float((P * (P + 1) / 2) * (int(i % 31) - 15));
    if (data[i] != want) {
      ADD_FAILURE() << "element " << i << ": got " << data[i] << ", want " << want;
      break;
    }
  }
  expect_same_on_every_rank(env, data);
}

TEST(MpiHostComm, BFloat16WireWithinBf16Rounding) {
  MpiEnv env;
  const int64_t n = 20011;
  auto data = rank_vector(env.rank(), n, 11);
  MpiHostComm comm(env, WireType::BFloat16);
  comm.allreduce_sum(data.data(), n);
  std::vector<double> ref(size_t(n), 0.0), mag(size_t(n), 0.0);
  for (int r = 0; r < env.size(); ++r) {
    const auto v = rank_vector(r, n, 11);
    for (int64_t i = 0; i < n; ++i) {
      ref[i] += v[i];
      mag[i] += std::abs(v[i]);
    }
  }
  // Each input and each of the P-1 partial sums is rounded once to bf16 (unit roundoff 2^-8).
  const double u = std::ldexp(1.0, -8);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; ++i)
    if (!(std::abs(data[i] - ref[i]) <= u * (2 * env.size()) * mag[i])) {
      ++bad;
      ADD_FAILURE() << "element " << i << ": got " << data[i] << ", want " << ref[i];
    }
  // The result is a bf16 value, stored as float32.
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bf16_to_float(float_to_bf16(data[i])), data[i]);
  expect_same_on_every_rank(env, data);
}

TEST(MpiHostComm, EmptyVectorAndSeveralStartsBeforeWait) {
  MpiEnv env;
  MpiHostComm comm(env, WireType::Float32);
  comm.allreduce_sum(static_cast<float*>(nullptr), 0);
  std::vector<float> a(10, 1.0f), b(7, 2.0f);
  comm.start(a.data(), 10, nullptr);
  comm.start(b.data(), 7, nullptr);
  comm.wait(nullptr);
  for (float v : a) EXPECT_EQ(v, float(env.size()));
  for (float v : b) EXPECT_EQ(v, 2.0f * float(env.size()));
}

TEST(MpiHostComm, RejectsDeviceStream) {
  MpiEnv env;
  MpiHostComm comm(env, WireType::Float32);
  float x = 1.0f;
  int dummy = 0;  // any non-null stream
  EXPECT_THROW(comm.start(&x, 1, &dummy), SaeError);
}

TEST(Bf16Host, RoundToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(bf16_to_float(float_to_bf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::max()))));
}

TEST(CommBackendChoice, NcclOnlyWithOneRankPerGpu) {
  const std::vector<std::string> distinct{"n1/0000:01:00.0", "n1/0000:02:00.0", "n2/0000:01:00.0"};
  const std::vector<std::string> shared{"n1/0000:01:00.0", "n1/0000:01:00.0"};
  EXPECT_EQ(choose_comm_backend(CommBackend::Auto, true, distinct), CommBackend::Nccl);
  EXPECT_EQ(choose_comm_backend(CommBackend::Auto, true, shared), CommBackend::MpiHost);
  EXPECT_EQ(choose_comm_backend(CommBackend::Auto, false, distinct), CommBackend::MpiHost);
  EXPECT_EQ(choose_comm_backend(CommBackend::MpiHost, true, distinct), CommBackend::MpiHost);
  EXPECT_EQ(choose_comm_backend(CommBackend::Nccl, true, distinct), CommBackend::Nccl);
  EXPECT_THROW(choose_comm_backend(CommBackend::Nccl, false, distinct), SaeError);
  EXPECT_THROW(choose_comm_backend(CommBackend::Nccl, true, shared), SaeError);
}

}  // namespace
}  // namespace saepipe
