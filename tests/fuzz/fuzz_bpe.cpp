// Fuzzes the GPT-2 tokenizer's files: the input is vocab.json, a 0xFF byte, merges.txt (no
// 0xFF: merges.txt is the whole input after the first 0xFF, which valid UTF-8 never holds),
// then, when the files load, a fixed text with every kind of pre-token is encoded and every
// id must lie inside the vocabulary.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "pipeline/model/bpe_tokenizer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = saepipe::fuzz::scratch_dir();
  const auto* sep = static_cast<const uint8_t*>(std::memchr(data, 0xFF, size));
  const size_t vocab_size = sep ? size_t(sep - data) : size;
  saepipe::fuzz::write_bytes(dir + "/vocab.json", data, vocab_size);
  saepipe::fuzz::write_bytes(dir + "/merges.txt", sep ? sep + 1 : data + size, sep ? size - vocab_size - 1 : 0);
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::Gpt2Tokenizer tok(dir);
    const auto ids = tok.encode("Hello world's 123 tests!\n\n  <|endoftext|> caf\xC3\xA9 \xE6\x9D\xB1", "fuzz text");
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();
  });
  return 0;
}
