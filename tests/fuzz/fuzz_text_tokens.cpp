// Fuzzes the text and JSONL token inputs (open_token_source with format "text" or "jsonl"):
// the first byte picks the format, the rest is the file, tokenized with a small real GPT-2
// vocabulary (tests/fuzz/corpus/text_tokens/model/: vocab.json + merges.txt); every token read
// back must lie inside the vocabulary.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "pipeline/model/token_source.hpp"
#include "tests/fuzz/fuzz_common.hpp"

#ifndef SAEPIPE_FUZZ_MODEL_DIR
#error "SAEPIPE_FUZZ_MODEL_DIR: the directory of vocab.json and merges.txt"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool jsonl = data[0] % 2 == 1;
  const std::string path = saepipe::fuzz::scratch_dir() + (jsonl ? "/docs.jsonl" : "/docs.txt");
  saepipe::fuzz::write_bytes(path, data + 1, size - 1);
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::TokenInputOptions o;
    o.path = path;
    o.format = jsonl ? "jsonl" : "text";
    o.model_dir = SAEPIPE_FUZZ_MODEL_DIR;
    o.eos_token = 7;
    auto src = saepipe::open_token_source(o);
    std::vector<int32_t> out(size_t(src->size()));
    if (!out.empty()) src->read(0, int64_t(out.size()), out.data());
    for (int32_t t : out)
      if (t < 0 || t >= 512) std::abort();  // the fixture vocabulary has 512 ids (EOS 7)
  });
  return 0;
}
