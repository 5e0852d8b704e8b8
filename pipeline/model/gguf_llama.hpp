// What a llama.cpp GGUF file of architecture "llama" says about its model: the hyper-parameters
// under `llama.*` and the tokenizer under `tokenizer.ggml.*` (key names as gguf-py's constants
// and llama.cpp's loader use them). Missing required keys, values out of range and features this
// reader does not handle are user errors naming the file and the key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/model/gguf.hpp"

namespace saepipe {

struct GgufLlamaParams {
  int64_t n_layers = 0;        // llama.block_count
  int64_t d_model = 0;         // llama.embedding_length
  int64_t d_mlp = 0;           // llama.feed_forward_length
  int64_t n_heads = 0;         // llama.attention.head_count
  int64_t n_kv_heads = 0;      // llama.attention.head_count_kv (default n_heads)
  int64_t head_dim = 0;        // llama.attention.key_length (default d_model / n_heads)
  int64_t vocab_size = 0;      // token_embd rows (llama.vocab_size must agree when present)
  int64_t context_length = 0;  // llama.context_length
  int64_t rope_dim = 0;        // llama.rope.dimension_count (default head_dim; must equal it)
  double rope_theta = 10000;   // llama.rope.freq_base
  double rms_eps = 1e-5;       // llama.attention.layer_norm_rms_epsilon
  // llama.rope.scaling.type: "none" or "linear" (factor llama.rope.scaling.factor, or the older
  // llama.rope.scale_linear). Others, and a rope_freqs tensor (llama 3 scaling), are refused.
  std::string rope_scaling = "none";
  double rope_scaling_factor = 1;
  bool tied_embeddings = false;  // no output.weight: the unembedding is token_embd
};

// general.architecture must be "llama".
GgufLlamaParams read_llama_params(const GgufFile& file);

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class GgufTokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct GgufTokenizerData {
  std::string model;                // tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama" (SentencePiece) ...
  std::string pre;                  // tokenizer.ggml.pre: the pre-tokenizer's name ("smollm", "llama-bpe" ...), may be empty
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens: id -> token text
  std::vector<int32_t> token_types; // tokenizer.ggml.token_type (all Normal when absent)
  std::vector<std::string> merges;  // tokenizer.ggml.merges: "left right", highest priority first
  std::vector<float> scores;        // tokenizer.ggml.scores (SentencePiece), may be empty
  int64_t bos = -1, eos = -1, unk = -1, pad = -1;  // tokenizer.ggml.*_token_id, -1 when absent
  bool add_bos = false, add_eos = false;           // tokenizer.ggml.add_bos_token / add_eos_token
};

// Every id and array length is checked against the token list.
GgufTokenizerData read_gguf_tokenizer(const GgufFile& file);

}  // namespace saepipe
