// The first pass's sparse codes and token ids, kept in a per-rank scratch file so that the
// second pass reads them back instead of reading the store and encoding again (the encoder is
// nearly all of the stage's time). The file is removed when the object goes; a killed run's
// leftovers (".codes.*.tmp" in the stats directory) are removed by the next run. Record per
// batch: int64 first_row, n, width; int32 tokens [n]; int32 idx [n, width]; float val [n, width].
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "pipeline/stats/encoded_batch.hpp"

namespace saepipe {

class CodeSpill {
 public:
  explicit CodeSpill(std::string path);  // created empty; user error naming it if it cannot be
  ~CodeSpill();
  CodeSpill(const CodeSpill&) = delete;
  CodeSpill& operator=(const CodeSpill&) = delete;

  // Appends the batch; false when the write failed (disk full), with the reason in error():
  // the file is only a shortcut, so the caller drops it and encodes again in the second pass.
  bool write(const EncodedBatch& b);
  const std::string& error() const { return error_; }
  static int64_t record_bytes(const EncodedBatch& b);
  int64_t bytes() const { return bytes_; }
  // Flushes and goes back to the start; false when the flush failed (the buffered tail could
  // not be written), with the reason in error().
  bool rewind();
  // The next batch, pointing into this object's buffers (valid until the next read).
  EncodedBatch read(int64_t sequence_length);

  // Removes "<dir>/.codes.*.tmp" left by killed runs.
  static void remove_leftovers(const std::string& dir);

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t bytes_ = 0;
  std::string error_;
  std::vector<int32_t> tokens_, idx_;
  std::vector<float> val_;
};

}  // namespace saepipe
