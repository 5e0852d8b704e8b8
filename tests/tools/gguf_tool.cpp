// Test helper: what the GGUF reader sees in a file, for comparison with gguf-py
// (tests/python/check_gguf.py).
//   saepipe_gguf_tool info FILE   JSON: version, alignment, data offset, every metadata value
//                                 (typed), every tensor info
//   saepipe_gguf_tool dump FILE   the readable tensors dequantized to float32, in file order,
//                                 raw little-endian on stdout
//   saepipe_gguf_tool llama FILE  JSON: the Llama hyper-parameters and the tokenizer data
//   saepipe_gguf_tool tokenizer FILE  the tokenizer.json built from the file's tokenizer.ggml.*
// Errors: the message on stderr and the library's exit code.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/ggml_types.hpp"
#include "pipeline/model/gguf.hpp"
#include "pipeline/model/gguf_llama.hpp"
#include "pipeline/model/gguf_tokenizer.hpp"

using namespace saepipe;
using nlohmann::json;

namespace {

json scalar(const GgufValue& v, uint64_t i) {
  switch (v.scalar_type()) {
    case GgufType::F32: case GgufType::F64: return v.number_at(i);
    case GgufType::Bool: return v.unsigned_at(i) != 0;
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: return v.unsigned_at(i);
    default: return v.integer_at(i);
  }
}

json value_json(const GgufValue& v) {
  json out = {{"type", gguf_type_name(v.type)}};
  if (!v.is_array()) {
    out["value"] = v.type == GgufType::String ? json(v.strings[0]) : scalar(v, 0);
    return out;
  }
  out["element"] = gguf_type_name(v.element);
  json items = json::array();
  for (uint64_t i = 0; i < v.count; ++i) {
    if (v.element == GgufType::String) items.push_back(v.strings[i]);
    else if (v.element == GgufType::Array) items.push_back(value_json(v.items[i]));
    else items.push_back(scalar(v, i));
  }
  out["value"] = std::move(items);
  return out;
}

void print(const json& j) {
  const std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

int run(const std::string& cmd, const std::string& path) {
  GgufFile f(path);
  if (cmd == "info") {
    json j = {{"version", f.version()}, {"alignment", f.alignment()}, {"data_offset", f.data_offset()}};
    json kv = json::array();
    for (const auto& [key, v] : f.metadata()) {
      json e = value_json(v);
      e["key"] = key;
      kv.push_back(std::move(e));
    }
    j["metadata"] = std::move(kv);
    json ts = json::array();
    for (const auto& t : f.tensors())
      ts.push_back({{"name", t.name}, {"ne", t.ne}, {"type", t.type}, {"type_name", ggml_type_name(t.type)},
                    {"offset", t.offset}, {"n_bytes", t.n_bytes}});
    j["tensors"] = std::move(ts);
    print(j);
  } else if (cmd == "dump") {
    std::vector<float> buf;
    for (const auto& t : f.tensors()) {
      if (!ggml_type_info(t.type).dequantizable) continue;
      buf.resize(size_t(t.n_elements()));
      f.read_f32(t, buf.data());
      if (std::fwrite(buf.data(), 4, buf.size(), stdout) != buf.size()) internal_error("dump: write to stdout failed");
    }
  } else if (cmd == "llama") {
    const GgufLlamaParams p = read_llama_params(f);
    const GgufTokenizerData t = read_gguf_tokenizer(f);
    print({{"n_layers", p.n_layers}, {"d_model", p.d_model}, {"d_mlp", p.d_mlp}, {"n_heads", p.n_heads},
           {"n_kv_heads", p.n_kv_heads}, {"head_dim", p.head_dim}, {"vocab_size", p.vocab_size},
           {"context_length", p.context_length}, {"rope_dim", p.rope_dim}, {"rope_theta", p.rope_theta},
           {"rms_eps", p.rms_eps}, {"rope_scaling", p.rope_scaling}, {"tied_embeddings", p.tied_embeddings},
           {"tokenizer", {{"model", t.model}, {"pre", t.pre}, {"tokens", t.tokens}, {"token_types", t.token_types},
                          {"merges", t.merges}, {"bos", t.bos}, {"eos", t.eos}, {"unk", t.unk}, {"pad", t.pad},
                          {"add_bos", t.add_bos}, {"add_eos", t.add_eos}}}});
  } else if (cmd == "tokenizer") {
    print(gguf_tokenizer_json(f));
  } else {
    user_error("unknown command '" + cmd + "' (info, dump, llama, tokenizer)");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: saepipe_gguf_tool info|dump|llama|tokenizer FILE\n");
    return 2;
  }
  try {
    return run(argv[1], argv[2]);
  } catch (const SaeError& e) {
    std::fprintf(stderr, "saepipe_gguf_tool: %s\n", e.what());
    return e.exit_code();
  }
}
