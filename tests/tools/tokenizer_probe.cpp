// saepipe's tokenizer.json reader on given texts, for tests/python/hf_tokenizers.py:
//   tokenizer_probe TOKENIZER_JSON CASES_JSON OUT_JSON
// CASES_JSON: {"texts": [...], "decode": [[ids], ...]}. OUT_JSON: {"ids": [[...], ...] (encode
// of each text), "decoded": [...] (decode of each id list), "token_bytes": [hex of each id's
// bytes, for ids 0..vocab-1]}.
//   tokenizer_probe --bos MODEL OUT_JSON
// whether the model's tokenizer starts a text with BOS (harvest.prepend_bos = "auto"):
// OUT_JSON {"adds": bool, "id": int}, for tests/python/hf_tokenizer_bos.py. A user error prints one line ("saepipe-probe: error: ...", as the
// stage programs word theirs) and exits 2.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/model/hf_tokenizer.hpp"
#include "pipeline/model/tokenizer_bos.hpp"

using namespace saepipe;

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::string(argv[1]) == "--bos") {
      const TokenizerBos b = tokenizer_bos(argv[2]);
      std::ofstream(argv[3]) << nlohmann::json{{"adds", b.adds}, {"id", b.id}}.dump();
      std::cout << b.reason << "\n";
      return 0;
    }
    if (argc != 4) {
      std::cerr << "usage: tokenizer_probe TOKENIZER_JSON CASES_JSON OUT_JSON | --bos MODEL OUT_JSON\n";
      return 2;
    }
    const HfTokenizer tok(read_file(argv[1]), argv[1]);
    const auto cases = nlohmann::json::parse(read_file(argv[2]));
    nlohmann::json out = {{"ids", nlohmann::json::array()}, {"decoded", nlohmann::json::array()},
                          {"token_bytes", nlohmann::json::array()}};
    for (const auto& t : cases["texts"]) out["ids"].push_back(tok.encode(t.get<std::string>()));
    for (const auto& ids : cases["decode"]) out["decoded"].push_back(tok.decode(ids.get<std::vector<int32_t>>()));
    static const char* hex = "0123456789abcdef";
    for (int32_t id = 0; id < tok.vocab_size(); ++id) {
      std::string h;
      for (unsigned char c : tok.token_bytes(id)) h += hex[c >> 4], h += hex[c & 15];
      out["token_bytes"].push_back(h);
    }
    std::ofstream(argv[3]) << out.dump();
    return 0;
  } catch (const SaeError& e) {
    std::cerr << "saepipe-probe: error: " << e.what() << "\n";
    return e.exit_code();
  }
}
