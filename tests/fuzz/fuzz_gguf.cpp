// Fuzzes the GGUF reader: the header, every metadata type (arrays of arrays included), the
// tensor infos, alignment and offsets, the dequantization of every tensor it accepts, the
// Llama hyper-parameters and tokenizer read from the metadata, and the tokenizer built from them.
#include <cstdint>
#include <vector>

#include "pipeline/model/gguf.hpp"
#include "pipeline/model/gguf_llama.hpp"
#include "pipeline/model/gguf_tokenizer.hpp"
#include "pipeline/model/ggml_types.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = saepipe::fuzz::scratch_dir() + "/model.gguf";
  saepipe::fuzz::write_bytes(path, data, size);
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::GgufFile f(path);
    for (const auto& t : f.tensors()) {
      // Accepted tensors lie inside the file, so reading them must be safe.
      if (t.n_elements() > (int64_t(1) << 22) || !saepipe::ggml_type_info(t.type).dequantizable) continue;
      std::vector<float> out(size_t(t.n_elements()));
      f.read_f32(t, out.data());
    }
    saepipe::fuzz::expect_clean_rejection([&] { saepipe::read_gguf_tokenizer(f); });
    // The tokenizer.json built from it, through the tokenizer.json reader.
    saepipe::fuzz::expect_clean_rejection([&] { saepipe::open_gguf_tokenizer(f)->encode("Hello, 2024 wörld!"); });
    saepipe::read_llama_params(f);
  });
  return 0;
}
