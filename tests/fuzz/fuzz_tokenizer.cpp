// Fuzzes the tokenizer.json reader (pipeline/model/hf_tokenizer): the JSON, the vocabulary and
// merges, every normalizer, pre-tokenizer and decoder description and its regexes; a tokenizer
// it accepts then encodes fixed tricky text and the input itself, and decodes ids.
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/model/hf_tokenizer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  saepipe::fuzz::expect_clean_rejection([&] {
    const saepipe::HfTokenizer tok(text, "tokenizer.json");
    tok.encode("Hello  world\n\t 123 caf\xC3\xA9 \xF0\x9F\x99\x82 <s> it's");
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < 64 && i < tok.vocab_size(); ++i) ids.push_back(i), tok.token_bytes(i);
    tok.decode(ids);
    tok.encode(text.substr(0, 256));
  });
  return 0;
}
