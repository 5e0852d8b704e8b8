// The tokenizer a GGUF file carries (tokenizer.ggml.*), as the tokenizer.json that Hugging Face
// would have for it, fed to the tokenizer.json BPE tokenizer (hf_tokenizer.hpp). Byte-level BPE
// (tokenizer.ggml.model "gpt2"):
//   vocab        tokenizer.ggml.tokens (a token outside GPT-2's byte alphabet is spelled through it)
//   merges       tokenizer.ggml.merges
//   added tokens token_type 3 (control) as special tokens, 4 (user-defined) as plain ones,
//                matched whole in the text as tokenizers does
//   pre-tokenizer by tokenizer.ggml.pre, as llama.cpp splits text for that name:
//                gpt2 / default (or none): GPT-2's regex;  smollm: single digits, then GPT-2's regex;
//                llama-bpe / llama3: Llama 3's regex;       qwen2: Qwen2's regex
//   decoder      ByteLevel
// Other tokenizer models and pre-tokenizer names are user errors naming the key.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/model/gguf.hpp"
#include "pipeline/model/hf_tokenizer.hpp"

namespace saepipe {

nlohmann::json gguf_tokenizer_json(const GgufFile& file);

// Empty when the file's tokenizer can be built, else why not (for the interpret site, which then
// shows token ids).
std::string gguf_tokenizer_unsupported(const GgufFile& file);

std::unique_ptr<HfTokenizer> open_gguf_tokenizer(const GgufFile& file);

}  // namespace saepipe
