// Microbenchmark of the TopK SAE training step on one GPU: the step the train stage runs on
// run.device = "cuda" (pipeline/sae/cuda/train_step.cu, through make_cuda_train_step), against
// a measured cuBLAS GEMM peak on the same device.
//
//   saepipe_bench_gpu [--d 768] [--f 32768] [--k 32] [--batches 4096,16384]
//                     [--precisions bf16,fp32] [--auxk 0] [--dead-fraction 0.1]
//                     [--x FILE] [--iters 10] [--json FILE]
//
// For each batch size N and encoder precision it times (mean of --iters after 3 warm-ups):
//   gemm     the encoder GEMM alone, [N,D] x [D,F] in that precision (CUDA events)
//   topk     the fused bias + top-k alone over [N,F] (CUDA events)
//   step     TrainStep::step, wall clock: the rows copied in from host memory, forward and
//            backward (float64 gradient), the gradient rounded, Adam with the decoder rows
//            fused, and the counters copied back — everything the train stage's step costs
// and reports tokens/s = N / step and TFLOP/s of the step counted as 2NFD (encoder GEMM) +
// 8NKD (sparse decode, its two backward products, the encoder's sparse backward), next to
// the peak measured here for a 8192^3 GEMM (bf16 inputs, fp32 accumulate; also tf32, fp32).
// --x FILE: float32 rows [*, D] (raw, little-endian; the batch the peers train on,
// bench/peers/make_batch.py); the first N rows are the step's batch. Without it, N(0,1) rows.
// Shape legend: N tokens, D d_model, F latents, K top-k.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/sae/cuda/sae.hpp"
#include "pipeline/sae/cuda/train_step.hpp"

namespace {

using namespace saepipe;
using cuda::DeviceBuffer;

// Mean milliseconds of fn over iters calls after warmup calls.
double time_ms(cudaStream_t stream, int warmup, int iters, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  SAE_CUDA_CHECK(cudaEventCreate(&a));
  SAE_CUDA_CHECK(cudaEventCreate(&b));
  SAE_CUDA_CHECK(cudaEventRecord(a, stream));
  for (int i = 0; i < iters; ++i) fn();
  SAE_CUDA_CHECK(cudaEventRecord(b, stream));
  SAE_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  SAE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return double(ms) / iters;
}

std::vector<float> host_normal(int64_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = nd(rng);
  return v;
}

cuda::GemmPrecision parse_precision(const std::string& s) {
  if (s == "bf16") return cuda::GemmPrecision::BF16;
  if (s == "tf32") return cuda::GemmPrecision::TF32;
  if (s == "fp32") return cuda::GemmPrecision::FP32;
  user_error("precision '" + s + "' is not one of bf16, tf32, fp32");
}

std::vector<float> read_rows(const std::string& path, int64_t n, int64_t D) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(path + ": cannot open");
  std::vector<float> x(size_t(n * D));
  in.read(reinterpret_cast<char*>(x.data()), std::streamsize(x.size() * sizeof(float)));
  if (!in) user_error(path + ": holds fewer than " + std::to_string(n) + " rows of " + std::to_string(D) + " floats");
  return x;
}

int run(int argc, char** argv) {
  int64_t D = 768, F = 32768, K = 32, auxk = 0;
  double dead_fraction = 0.1;
  int iters = 10;
  std::vector<int64_t> batches{4096, 16384};
  std::vector<std::string> precisions{"bf16", "fp32"};
  std::string json_path, x_path;
  CLI::App app{"TopK SAE training step on one GPU"};
  app.add_option("--d", D, "d_model");
  app.add_option("--f", F, "d_sae");
  app.add_option("--k", K, "top-k");
  app.add_option("--batches", batches, "tokens per step")->delimiter(',');
  app.add_option("--precisions", precisions, "encoder GEMM: bf16, fp32 (train.precision)")->delimiter(',');
  app.add_option("--x", x_path, "float32 rows [*, d] to train on (default: N(0,1))");
  app.add_option("--auxk", auxk, "AuxK width (0: off)");
  app.add_option("--dead-fraction", dead_fraction, "fraction of latents marked dead for AuxK");
  app.add_option("--iters", iters, "timed iterations");
  app.add_option("--json", json_path, "write the results as JSON here");
  CLI11_PARSE(app, argc, argv);

  // Dead latents for AuxK: every latent f with f mod round(1/fraction) == 0.
  std::vector<uint8_t> hdead(static_cast<size_t>(F), 0);
  int64_t n_dead = 0;
  if (auxk > 0 && dead_fraction > 0) {
    const int64_t every = std::max<int64_t>(1, int64_t(std::llround(1.0 / dead_fraction)));
    for (int64_t f = 0; f < F; f += every) hdead[size_t(f)] = 1, ++n_dead;
  }

  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "no CUDA device\n");
    return 77;
  }
  const int dev = cuda::select_device(0);
  cuda::keep_pool_memory(dev);
  cudaDeviceProp prop{};
  SAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  cudaStream_t stream;
  SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cuda::Blas blas;
  std::ostringstream js;
  js << "{\n  \"device\": \"" << prop.name << "\", \"sms\": " << prop.multiProcessorCount
     << ", \"l2_bytes\": " << prop.l2CacheSize << ",\n  \"shape\": {\"d\": " << D << ", \"f\": " << F
     << ", \"k\": " << K << ", \"auxk\": " << auxk << ", \"dead\": " << n_dead
     << "},\n";
  std::printf("device: %s (%d SMs, L2 %d MiB)\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);

  // ---- GEMM peaks, 8192^3
  const int64_t G = 8192;
  double peak_bf16 = 0;
  {
    DeviceBuffer<float> A(G * G), B(G * G), C(G * G);
    DeviceBuffer<__nv_bfloat16> Ab(G * G), Bb(G * G);
    const auto h = host_normal(G * G, 1, 1.0f);
    A.upload(h, stream), B.upload(h, stream);
    cuda::to_bf16(A.data(), G * G, Ab.data(), stream);
    cuda::to_bf16(B.data(), G * G, Bb.data(), stream);
    const double flop = 2.0 * double(G) * double(G) * double(G);
    const double ms_bf16 = time_ms(stream, 3, iters, [&] {
      cuda::matmul(false, true, G, G, G, 1.0f, Ab.data(), G, Bb.data(), G, 0.0f, C.data(), G, blas, stream);
    });
    peak_bf16 = flop / ms_bf16 * 1e-9;
    js << "  \"gemm_peak_tflops\": {\"bf16\": " << peak_bf16;
    std::printf("GEMM 8192^3  bf16 in, fp32 acc: %8.1f TFLOP/s\n", peak_bf16);
    for (auto p : {cuda::GemmPrecision::TF32, cuda::GemmPrecision::FP32}) {
      const double ms = time_ms(stream, 1, 3, [&] {
        cuda::matmul(false, true, G, G, G, 1.0f, A.data(), G, B.data(), G, 0.0f, C.data(), G, p, blas, stream);
      });
      js << ", \"" << cuda::to_string(p) << "\": " << flop / ms * 1e-9;
      std::printf("GEMM 8192^3  %s:                %8.1f TFLOP/s\n", cuda::to_string(p), flop / ms * 1e-9);
    }
    js << "},\n";
  }

  // ---- the step
  SaeParams hp(D, F);
  init_tied(hp, 2);  // the shape of an initialised SAE: unit decoder rows, tied encoder
  MpiEnv env;        // one rank
  js << "  \"runs\": [";
  std::printf("\n%7s %5s %9s %9s %9s %12s %9s %7s\n", "N", "prec", "gemm ms", "topk ms", "step ms", "tokens/s",
              "TFLOP/s", "%peak");
  bool first = true;
  for (int64_t N : batches) {
    const std::vector<float> hx = x_path.empty() ? host_normal(N * D, 3, 1.0f) : read_rows(x_path, N, D);
    DeviceBuffer<float> x, params;
    x.upload(hx, stream);
    params.upload(hp.data, stream);
    const cuda::SaeLayout L{D, F};
    for (const auto& ps : precisions) {
      const auto prec = parse_precision(ps);
      DeviceBuffer<float> pre(N * F), val(N * K);
      DeviceBuffer<int32_t> idx(N * K);
      DeviceBuffer<__nv_bfloat16> xb(N * D), Wb(F * D);
      cuda::to_bf16(x.data(), N * D, xb.data(), stream);
      cuda::to_bf16(params.data() + L.W_encT(), F * D, Wb.data(), stream);
      const double gemm_ms = time_ms(stream, 3, iters, [&] {
        if (prec == cuda::GemmPrecision::BF16)
          cuda::matmul(false, true, N, F, D, 1.0f, xb.data(), D, Wb.data(), D, 0.0f, pre.data(), F, blas, stream);
        else
          cuda::matmul(false, true, N, F, D, 1.0f, x.data(), D, params.data() + L.W_encT(), D, 0.0f, pre.data(), F,
                       prec, blas, stream);
      });
      const double topk_ms = time_ms(stream, 3, iters, [&] {
        cuda::topk_rows(pre.data(), N, F, K, nullptr, idx.data(), val.data(), stream, params.data() + L.b_enc());
      });
      pre.reset();  // the step holds its own

      TrainStepConfig cfg;
      cfg.d_in = D;
      cfg.d_sae = F;
      cfg.sae.architecture = Architecture::TopK;
      cfg.sae.k = K;
      cfg.sae.auxk = auxk;
      cfg.precision = ps;
      const auto step = cuda::make_cuda_train_step(cfg, env);
      step->set_state(hp, AdamState{});
      StepBatch b{hx.data(), nullptr, 0, N, 0, 0, N};
      StepSchedule sched{1e-4f, 0.0};
      double active = 0;
      for (int i = 0; i < 3; ++i) step->step(b, hdead.data(), sched);
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) active += step->step(b, hdead.data(), sched).active;
      const double step_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
      const double flop = 2.0 * N * F * D + 8.0 * N * K * D;
      const double tflops = flop / step_ms * 1e-9, tok_s = N / step_ms * 1e3;
      std::printf("%7lld %5s %9.3f %9.3f %9.3f %12.0f %9.1f %6.1f%%\n", (long long)N, ps.c_str(), gemm_ms, topk_ms,
                  step_ms, tok_s, tflops, 100.0 * tflops / peak_bf16);
      js << (first ? "\n" : ",\n") << "    {\"n\": " << N << ", \"precision\": \"" << ps << "\", \"gemm_ms\": "
         << gemm_ms << ", \"topk_ms\": " << topk_ms << ", \"step_ms\": " << step_ms << ", \"tokens_per_s\": " << tok_s
         << ", \"step_tflops\": " << tflops << ", \"fraction_of_bf16_gemm_peak\": " << tflops / peak_bf16
         << ", \"gemm_tflops\": " << 2.0 * N * F * D / gemm_ms * 1e-9
         << ", \"active_per_token\": " << active / double(N * iters) << ", \"describe\": \"" << step->describe()
         << "\"}";
      first = false;
    }
  }
  js << "\n  ]\n}\n";
  SAE_CUDA_CHECK(cudaStreamDestroy(stream));
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << js.str();
    if (!out) user_error("cannot write " + json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  saepipe::MpiSession mpi(&argc, &argv);
  try {
    return run(argc, argv);
  } catch (const saepipe::SaeError& e) {
    std::fprintf(stderr, "%s:%d: %s\n", e.file(), e.line(), e.what());
    return e.exit_code();
  }
}
