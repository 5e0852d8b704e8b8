// Fuzzes the activation-store manifest reader (JSON parsing and every field check).
#include <cstdint>

#include "pipeline/io/activation_store.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = saepipe::fuzz::scratch_dir();
  saepipe::fuzz::write_bytes(dir + "/manifest.json", data, size);
  saepipe::fuzz::expect_clean_rejection([&] { saepipe::StoreManifest::read(dir); });
  return 0;
}
