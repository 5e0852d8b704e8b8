// Whether a model's own tokenizer starts a text with a BOS token, read from its tokenizer files
// the way Hugging Face transformers 5's AutoTokenizer decides it (encode with
// add_special_tokens=True; checked against transformers by tests/e2e/test_tokenizers.sh):
//   - tokenizer.json: its post_processor decides. A TemplateProcessing (alone or inside a
//     Sequence) whose single-sequence template begins with one special token prepends that
//     token; ByteLevel, none (null) or a template beginning with the text prepend nothing.
//     tokenizer_class GPTNeoXTokenizer is the exception: transformers rebuilds its
//     post-processor from add_bos_token, which it drops when tokenizer.json exists (no BOS).
//   - no tokenizer.json (GPT-2's vocab.json + merges.txt): tokenizer_config.json's
//     add_bos_token (default false) with its bos_token.
//   - a GGUF file: tokenizer.ggml.add_bos_token (llama.cpp's default when absent).
// tokenizer_config.json's add_bos_token is what transformers 4 followed for the Llama and Gemma
// classes; when it contradicts tokenizer.json (the two transformers generations would differ)
// that is a user error asking for harvest.prepend_bos to be set, never a silent pick. No
// tokenizer files at all: a user error (nothing tells).
#pragma once
#include <cstdint>
#include <string>

namespace saepipe {

struct TokenizerBos {
  bool adds = false;   // the tokenizer prepends a BOS token
  int64_t id = -1;     // which (when adds)
  std::string reason;  // what decided it, for the log: "tokenizer.json post_processor ..."
};

// model_path: a Hugging Face model directory or a .gguf file. User error naming the file when
// the files do not tell or contradict each other.
TokenizerBos tokenizer_bos(const std::string& model_path);

}  // namespace saepipe
