// saepipe's model forward pass (the harvest's compute) timed the way
// bench/peers/harvest_transformers.py times Hugging Face transformers' forward: the same token
// ids already in memory, batches of B sequences of T tokens, the wall time of each batch, only
// the blocks the hook needs. bench/report.py takes the median of the batches after the warm-up.
//
//   bench_forward_timed --model DIR --hook blocks.8.hook_resid_post --ids FILE --context 128
//                       --batch 8 [--warmup 1] --json OUT
//
// FILE: int32 [n_seq, context], raw little-endian (BOS already first). Each batch's hooked
// activations land in a [B*T, D] host buffer, as in the harvest (source_model.cpp), which
// then copies them into its shard; the HDF5 write is not timed here (the harvest stage's own
// tokens/s, with it, is a separate row of the report). BLAS is single-threaded for the run
// and the OpenMP threads split the work, as in the harvest.
//
// Shape legend: B sequences, T positions, D d_model.
#include <CLI/CLI.hpp>
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/blas_threads.hpp"
#include "pipeline/model/transformer.hpp"

namespace saepipe {
namespace {

// The process's peak resident memory so far (getrusage's ru_maxrss, KiB on Linux).
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int run(int argc, char** argv) {
  std::string model_dir, hook = "blocks.8.hook_resid_post", ids_path, json_path;
  int64_t T = 128, B = 8;
  int warmup = 1;
  CLI::App app{"saepipe's forward pass over in-memory token ids, timed batch by batch"};
  app.add_option("--model", model_dir)->required();
  app.add_option("--hook", hook);
  app.add_option("--ids", ids_path, "int32 [n_seq, context] raw file")->required();
  app.add_option("--context", T)->check(CLI::PositiveNumber);
  app.add_option("--batch", B, "sequences per forward pass")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup)->check(CLI::NonNegativeNumber);
  app.add_option("--json", json_path)->required();
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(ids_path, std::ios::binary | std::ios::ate);
  if (!in) user_error(ids_path + ": cannot open");
  const auto bytes = int64_t(in.tellg());
  if (bytes <= 0 || bytes % int64_t(T * B * sizeof(int32_t)) != 0)
    user_error(ids_path + ": " + std::to_string(bytes) + " bytes is not a whole number of batches of " +
               std::to_string(B) + " x " + std::to_string(T) + " int32 ids");
  std::vector<int32_t> ids(size_t(bytes / sizeof(int32_t)));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(ids.data()), bytes);

  auto model = load_transformer(model_dir, {hook});
  const double rss_after_load_mib = peak_rss_mib();
  const std::vector<HookPoint> hooks{model->hook(hook)};
  for (int32_t t : ids)
    if (t < 0 || t >= model->vocab_size()) user_error(ids_path + ": token id " + std::to_string(t) + " is outside the vocabulary");
  const int64_t D = model->d_model(), n_batches = int64_t(ids.size()) / (B * T);
  std::vector<float> act(size_t(B * T * D));  // [B*T, D]
  const std::vector<float*> out{act.data()};
  SingleThreadedBlas one_blas_thread;
  nlohmann::json seconds = nlohmann::json::array();
  for (int64_t b = 0; b < std::max<int64_t>(n_batches, warmup + 1); ++b) {
    const int32_t* tok = ids.data() + (b % n_batches) * B * T;
    const double t0 = now_s();
    model->forward(tok, B, T, hooks, out);
    seconds.push_back(now_s() - t0);
  }
  double checksum = 0;  // the activations were computed (and are finite)
  for (float v : act) checksum += double(v) * v;
  if (!std::isfinite(checksum)) internal_error("non-finite activations from " + model_dir);
  nlohmann::json j = {{"impl", "saepipe"}, {"family", model->family()}, {"threads", omp_get_max_threads()},
                      {"blas_kernels", openblas_get_corename()},
                      {"hook", hook}, {"context", T}, {"batch_sequences", B}, {"warmup", warmup},
                      {"tokens_per_batch", B * T}, {"seconds", seconds}, {"mean_square_activation", checksum / double(act.size())},
                      {"peak_rss_after_load_mib", rss_after_load_mib}, {"peak_rss_mib", peak_rss_mib()}};
  std::ofstream f(json_path);
  f << j.dump(1) << "\n";
  if (!f) user_error(json_path + ": cannot write");
  return 0;
}

}  // namespace
}  // namespace saepipe

int main(int argc, char** argv) {
  try {
    return saepipe::run(argc, argv);
  } catch (const saepipe::SaeError& e) {
    std::fprintf(stderr, "bench_forward_timed: %s\n", e.what());
    return e.exit_code();
  }
}
