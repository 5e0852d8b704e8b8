// Fuzzes the binary token readers (llm.c .bin, raw uint16 .bin, .npy): header parsing and
// size checks, then a read of every token the reader accepted.
#include <cstdint>
#include <vector>

#include "pipeline/model/token_source.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the format, the rest is the file.
  static const char* kExt[] = {".bin", ".npy", ".bin"};
  static const char* kFormat[] = {"llmc", "npy", "auto"};
  const int which = data[0] % 3;
  const std::string path = saepipe::fuzz::scratch_dir() + "/tokens" + kExt[which];
  saepipe::fuzz::write_bytes(path, data + 1, size - 1);
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::TokenInputOptions o;
    o.path = path;
    o.format = kFormat[which];
    auto src = saepipe::open_token_source(o);
    std::vector<int32_t> out(size_t(std::min<int64_t>(src->size(), 1 << 20)));
    if (!out.empty()) src->read(0, int64_t(out.size()), out.data());
  });
  return 0;
}
