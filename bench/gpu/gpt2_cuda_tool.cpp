// The CUDA GPT-2 forward pass from the command line, for the GPU checks of
// bench/gpu/run_all.sh:
//
//   saepipe_gpt2_cuda dump  --model DIR --tokens FILE --batch B --context T --hooks H1,H2,...
//                           [--precision fp32|bf16|fp16] [--unfused] [--cpu] --out PREFIX
//       tokens FILE: B*T int32 (raw, little-endian). Writes PREFIX.<k>.f32, hook k's
//       activations [B*T, d_model] as raw float32 (--cpu: the CPU reference model instead).
//       bench/gpu/hf_parity.py compares them with Hugging Face transformers' GPT2Model.
//
//   saepipe_gpt2_cuda bench --model DIR [--hook blocks.8.hook_resid_post] [--context 128]
//                           [--batch 64] [--tokens 1048576] [--precision bf16] [--unfused]
//                           [--write DIR --dtype float32|bfloat16 --shard-tokens 65536]
//                           [--json FILE]
//       Random token ids (BOS first); three measurements, each after 3 warm-up batches:
//         device    the pass alone, back to back on one stream (CUDA events)
//         forward   the harvest loop (Gpt2CudaHarvest): pass + copies to pinned host memory,
//                   copies overlapping the next pass
//         harvest   (with --write) the loop + shards written to HDF5 by a writer thread
//                   (write_shard, as the harvest stage), writing overlapping the next shard
//       Prints one JSON object (tokens/s of each, seconds waited on the writer, the matmul
//       plans) and appends it to --json.
//
// Shape legend: B sequences per pass, T context, N = B*T rows, C d_model.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/model/cuda/gpt2.hpp"
#include "kernels/cuda/kernels_cuda.hpp"
#include "pipeline/core/errors.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/model/transformer.hpp"

namespace {

using namespace saepipe;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int dump(const std::string& model_dir, const std::string& tokens_path, int64_t B, int64_t T,
         const std::vector<std::string>& names, const std::string& precision, bool unfused, bool cpu,
         const std::string& out_prefix) {
  std::ifstream in(tokens_path, std::ios::binary);
  if (!in) user_error(tokens_path + ": cannot open");
  std::vector<int32_t> tokens(static_cast<size_t>(B * T));
  in.read(reinterpret_cast<char*>(tokens.data()), std::streamsize(tokens.size() * sizeof(int32_t)));
  if (in.gcount() != std::streamsize(tokens.size() * sizeof(int32_t)))
    user_error(tokens_path + ": fewer than " + std::to_string(B * T) + " int32 tokens");
  std::unique_ptr<TransformerModel> model;
  std::string plans;
  if (cpu) {
    model = load_transformer(model_dir, names);
  } else {
    cuda::Gpt2CudaOptions opt;
    opt.precision = cuda::parse_precision(precision);
    opt.fuse_epilogues = !unfused;
    auto m = cuda::load_gpt2_cuda(model_dir, names, opt);
    model = std::move(m);
  }
  std::vector<HookPoint> hooks;
  for (const auto& n : names) hooks.push_back(parse_hook(n, model->n_layers()));
  const int64_t C = model->d_model();
  std::vector<std::vector<float>> out(hooks.size(), std::vector<float>(size_t(B * T * C)));
  std::vector<float*> ptr;
  for (auto& o : out) ptr.push_back(o.data());
  model->forward(tokens.data(), B, T, hooks, ptr);
  if (!cpu) std::fputs(static_cast<cuda::Gpt2CudaModel&>(*model).gemm_report().c_str(), stderr);
  for (size_t k = 0; k < hooks.size(); ++k) {
    const std::string path = out_prefix + "." + std::to_string(k) + ".f32";
    std::ofstream o(path, std::ios::binary);
    o.write(reinterpret_cast<const char*>(out[k].data()), std::streamsize(out[k].size() * sizeof(float)));
    if (!o) internal_error(path + ": write failed");
  }
  return 0;
}

struct BenchArgs {
  std::string model, hook = "blocks.8.hook_resid_post", precision = "bf16", write_dir, dtype = "float32", json;
  int64_t context = 128, batch = 64, tokens = 1 << 20, shard_tokens = 1 << 16;
  bool unfused = false;
};

int bench(const BenchArgs& a) {
  cuda::Gpt2CudaOptions opt;
  opt.precision = cuda::parse_precision(a.precision);
  opt.fuse_epilogues = !a.unfused;
  const auto model = cuda::load_gpt2_cuda(a.model, {a.hook}, opt);
  const std::vector<HookPoint> hooks = {parse_hook(a.hook, model->n_layers())};
  const int64_t T = a.context, B = a.batch, N = B * T, C = model->d_model();
  const int64_t n_batches = std::max<int64_t>(1, a.tokens / N), warmup = 3;
  if (T > model->n_positions()) user_error("--context exceeds the model's n_positions");

  // Random token ids, BOS first in each sequence; a few distinct batches reused round robin.
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int32_t> u(0, int32_t(model->vocab_size() - 1));
  std::vector<std::vector<int32_t>> batches(4, std::vector<int32_t>(static_cast<size_t>(N)));
  for (auto& b : batches)
    for (int64_t i = 0; i < N; ++i) b[size_t(i)] = (i % T == 0) ? int32_t(model->bos_token()) : u(rng);

  cudaDeviceProp prop{};
  int dev = 0;
  SAE_CUDA_CHECK(cudaGetDevice(&dev));
  SAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  nlohmann::json r = {{"device", prop.name},      {"precision", a.precision}, {"fused_epilogues", !a.unfused},
                      {"hook", a.hook},           {"context", T},              {"batch_sequences", B},
                      {"blocks_run", model->blocks_loaded()}, {"d_model", C}, {"n_layer", model->n_layers()}};

  // 1. The pass alone.
  {
    cudaStream_t s;
    SAE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cuda::DeviceBuffer<int32_t> tok;
    tok.upload(batches[0], s);
    cuda::DeviceBuffer<float> out(N * C);
    std::vector<float*> outs = {out.data()};
    for (int64_t i = 0; i < warmup; ++i) model->forward_device(tok.data(), B, T, hooks, outs, s);
    cudaEvent_t e0, e1;
    SAE_CUDA_CHECK(cudaEventCreate(&e0));
    SAE_CUDA_CHECK(cudaEventCreate(&e1));
    SAE_CUDA_CHECK(cudaEventRecord(e0, s));
    for (int64_t i = 0; i < n_batches; ++i) model->forward_device(tok.data(), B, T, hooks, outs, s);
    SAE_CUDA_CHECK(cudaEventRecord(e1, s));
    SAE_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    SAE_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    r["device_tokens_per_s"] = double(n_batches * N) / (double(ms) / 1e3);
    r["device_ms_per_batch"] = double(ms) / double(n_batches);
    SAE_CUDA_CHECK(cudaEventDestroy(e0));
    SAE_CUDA_CHECK(cudaEventDestroy(e1));
    SAE_CUDA_CHECK(cudaStreamDestroy(s));
  }

  // 2./3. The harvest loop, without and with HDF5 writing.
  auto loop = [&](bool write) {
    cuda::Gpt2CudaHarvest h(*model, hooks, B, T, 2);
    const int64_t batches_per_shard = std::max<int64_t>(1, a.shard_tokens / N);
    const StoreDtype dtype = parse_store_dtype(a.dtype);
    std::future<double> writing;
    double wait_s = 0, write_s = 0, consume_s = 0;
    int64_t shards = 0;
    std::shared_ptr<ShardData> shard;
    auto finish_write = [&] {
      const auto w0 = Clock::now();
      if (writing.valid()) write_s += writing.get();
      wait_s += seconds_since(w0);
    };
    auto consume = [&](int64_t i, const std::vector<float*>& act) {
      if (!write || i < warmup) return;
      const auto c0 = Clock::now();
      const int64_t k = (i - warmup) % batches_per_shard;
      if (k == 0) {
        shard = std::make_shared<ShardData>();
        const int64_t rows = std::min(batches_per_shard, n_batches - (i - warmup)) * N;
        shard->first_token = (i - warmup) * N;
        shard->n_tokens = rows;
        shard->activations.assign(1, std::vector<float>(static_cast<size_t>(rows * C)));
        shard->tokens.resize(size_t(rows)), shard->sequence.resize(size_t(rows)), shard->position.resize(size_t(rows));
      }
      std::memcpy(shard->activations[0].data() + k * N * C, act[0], size_t(N * C) * sizeof(float));
      const auto& tk = batches[size_t(i % 4)];
      for (int64_t j = 0; j < N; ++j) {
        shard->tokens[size_t(k * N + j)] = tk[size_t(j)];
        shard->sequence[size_t(k * N + j)] = ((i - warmup) * N + j) / T;
        shard->position[size_t(k * N + j)] = int32_t(j % T);
      }
      consume_s += seconds_since(c0);
      if (k + 1 == batches_per_shard || i + 1 == warmup + n_batches) {
        finish_write();
        const std::string path = a.write_dir + "/shard_" + std::to_string(shards++) + ".h5";
        writing = std::async(std::launch::async, [data = shard, path, hook = a.hook, C, dtype] {
          const auto t0 = Clock::now();
          write_shard(path, *data, {hook}, C, dtype, "bench");
          return seconds_since(t0);
        });
        shard.reset();
      }
    };
    const int64_t total = warmup + n_batches;
    Clock::time_point t0;
    double gpu_s = 0;
    for (int64_t i = 0; i < total; ++i) {
      if (i == warmup) t0 = Clock::now();
      h.submit(int(i % 2), batches[size_t(i % 4)].data(), B);
      if (i > 0) {
        consume(i - 1, h.wait(int((i - 1) % 2)));
        if (i - 1 >= warmup) gpu_s += h.last_pass_seconds(int((i - 1) % 2));
      }
    }
    consume(total - 1, h.wait(int((total - 1) % 2)));
    gpu_s += h.last_pass_seconds(int((total - 1) % 2));
    finish_write();
    const double wall = seconds_since(t0);
    nlohmann::json j = {{"tokens_per_s", double(n_batches * N) / wall}, {"seconds", wall},
                        {"gpu_pass_seconds", gpu_s}};
    if (write)
      j.update({{"shards", shards}, {"dtype", a.dtype}, {"writer_busy_seconds", write_s},
                {"waiting_for_writer_seconds", wait_s}, {"copy_into_shard_seconds", consume_s},
                {"bytes_written_per_s", double(n_batches * N * C) * (a.dtype == "float32" ? 4.0 : 2.0) / wall}});
    return j;
  };
  r["forward"] = loop(false);
  if (!a.write_dir.empty()) {
    std::filesystem::create_directories(a.write_dir);
    r["harvest"] = loop(true);
    std::filesystem::remove_all(a.write_dir);
  }
  r["tokens_measured"] = n_batches * N;
  r["matmul_plans"] = split(model->gemm_report());
  std::printf("%s\n", r.dump().c_str());
  if (!a.json.empty()) std::ofstream(a.json, std::ios::app) << r.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"saepipe_gpt2_cuda: the CUDA GPT-2 forward pass (dump activations, benchmark the harvest loop)"};
  app.require_subcommand(1);
  std::string model, tokens, hooks, precision = "fp32", out;
  int64_t B = 1, T = 1;
  bool unfused = false, cpu = false;
  auto* d = app.add_subcommand("dump", "write hooked activations of a token file as raw float32");
  d->add_option("--model", model)->required();
  d->add_option("--tokens", tokens)->required();
  d->add_option("--batch", B)->required();
  d->add_option("--context", T)->required();
  d->add_option("--hooks", hooks)->required();
  d->add_option("--precision", precision);
  d->add_flag("--unfused", unfused);
  d->add_flag("--cpu", cpu, "run the CPU reference model instead");
  d->add_option("--out", out)->required();
  BenchArgs ba;
  auto* b = app.add_subcommand("bench", "harvest throughput on random tokens");
  b->add_option("--model", ba.model)->required();
  b->add_option("--hook", ba.hook);
  b->add_option("--context", ba.context);
  b->add_option("--batch", ba.batch);
  b->add_option("--tokens", ba.tokens);
  b->add_option("--precision", ba.precision);
  b->add_flag("--unfused", ba.unfused);
  b->add_option("--write", ba.write_dir, "write HDF5 shards here (removed afterwards)");
  b->add_option("--dtype", ba.dtype);
  b->add_option("--shard-tokens", ba.shard_tokens);
  b->add_option("--json", ba.json);
  CLI11_PARSE(app, argc, argv);
  try {
    if (!(*d && cpu) && cuda::device_count() == 0) {
      std::fprintf(stderr, "saepipe_gpt2_cuda: no CUDA device\n");
      return 1;
    }
    if (*d) return dump(model, tokens, B, T, split(hooks), precision, unfused, cpu, out);
    return bench(ba);
  } catch (const SaeError& e) {
    std::fprintf(stderr, "saepipe_gpt2_cuda: %s:%d %s\n", e.file(), e.line(), e.what());
    return e.exit_code();
  }
}
