// Fuzzes the JSON files of a Hugging Face model directory: the first byte picks the file, the
// rest is its text.
//   0 config.json (read_decoder_config, every family's fields and checks; read_model_config,
//     the GPT-2 reader of the CUDA model)
//   1 model.safetensors.index.json (Checkpoint: weight_map against two real shards written
//     once, then every tensor it accepted is read and the identity taken)
#include <cstdint>
#include <filesystem>
#include <vector>

#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/saelens_export.hpp"
#include "pipeline/model/decoder_config.hpp"
#include "pipeline/model/gpt2.hpp"
#include "pipeline/model/safetensors.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {

// A directory with shard-1.safetensors {a [2, 3], b [4]} and shard-2.safetensors {c [5]}.
std::string model_dir() {
  static const std::string dir = [] {
    const std::string d = saepipe::fuzz::scratch_dir() + "/model";
    saepipe::make_dirs(d);
    static const std::vector<float> a(6, 1.0f), b(4, 2.0f), c(5, 3.0f);
    saepipe::write_safetensors(d + "/shard-1.safetensors", {{"a", {2, 3}, &a}, {"b", {4}, &b}});
    saepipe::write_safetensors(d + "/shard-2.safetensors", {{"c", {5}, &c}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string dir = model_dir();
  const bool config = data[0] % 2 == 0;
  const std::string path = dir + (config ? "/config.json" : "/model.safetensors.index.json");
  std::error_code ec;
  std::filesystem::remove(dir + "/config.json", ec);
  std::filesystem::remove(dir + "/model.safetensors.index.json", ec);
  saepipe::fuzz::write_bytes(path, data + 1, size - 1);
  if (config) {
    saepipe::fuzz::expect_clean_rejection([&] { saepipe::read_decoder_config(dir).to_json(); });
    saepipe::fuzz::expect_clean_rejection([&] { saepipe::read_model_config(dir); });
    return 0;
  }
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::Checkpoint ck(dir);
    for (const char* name : {"a", "b", "c"}) {
      if (!ck.has(name)) continue;
      const saepipe::TensorInfo& info = ck.info(name);
      ck.load(name, info.shape);
    }
    ck.identity();
  });
  return 0;
}
