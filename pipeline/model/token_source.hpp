// Token inputs of a model harvest: a flat stream of token ids, read by range.
//   llmc     llm.c token file: 256 int32 header (magic 20240520, version 1, count), uint16 ids
//   uint16   raw little-endian uint16 ids (nanoGPT's .bin)
//   npy      NumPy .npy of int32, int64 or uint16 (any shape, C order, read flat)
//   hdf5     an integer dataset (harvest.tokens_dataset) of an HDF5 file, read flat
//   text     UTF-8 text, encoded with the model's tokenizer.json (hf_tokenizer.hpp), or GPT-2's
//            vocab.json + merges.txt when there is none
//   jsonl    one JSON object per line; each "text" is encoded, documents joined by the EOS id
// "auto" picks by extension (.bin: llmc when the magic matches, else uint16; .npy; .h5/.hdf5;
// .txt; .jsonl/.json). Binary formats are memory-mapped; text is tokenized when opened.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

struct TokenInputOptions {
  std::string path, format = "auto", dataset = "tokens";
  std::string model_dir;   // tokenizer.json (or vocab.json + merges.txt) for text/jsonl
  int64_t eos_token = -1;  // separator between JSONL documents (-1: none)
};

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual int64_t size() const = 0;             // number of tokens
  virtual std::string format() const = 0;       // the resolved format
  // out[count] = tokens [first, first + count), which must lie inside [0, size()).
  virtual void read(int64_t first, int64_t count, int32_t* out) const = 0;
  const std::string& path() const { return path_; }

 protected:
  std::string path_;
};

// Opens and checks the input (header, size, dtype); user error naming the file and the problem.
std::unique_ptr<TokenSource> open_token_source(const TokenInputOptions& options);

}  // namespace saepipe
