// Fuzzes the safetensors reader: the 8-byte header length, the JSON header, every offset,
// shape and dtype check, and the conversion of each tensor it accepts.
#include <cstdint>
#include <vector>

#include "pipeline/model/safetensors.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = saepipe::fuzz::scratch_dir() + "/model.safetensors";
  saepipe::fuzz::write_bytes(path, data, size);
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::SafetensorsFile f(path);
    for (const auto& [name, info] : f.tensors()) {
      // Accepted tensors lie inside the file, so reading them must be safe.
      if (info.n_elements() > (int64_t(1) << 24)) continue;
      std::vector<float> out(size_t(info.n_elements()));
      f.read_f32(name, out.data());
    }
  });
  return 0;
}
