#include "pipeline/stats/code_spill.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"

namespace saepipe {

CodeSpill::CodeSpill(std::string path) : path_(std::move(path)) {
  f_ = std::fopen(path_.c_str(), "w+b");
  if (!f_) output_error(path_ + ": cannot create the scratch file for the second pass", errno);
}

CodeSpill::~CodeSpill() {
  if (f_) std::fclose(f_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);  // best effort: the next run removes leftovers too
}

int64_t CodeSpill::record_bytes(const EncodedBatch& b) {
  return int64_t(3 * sizeof(int64_t)) + b.n * int64_t(sizeof(int32_t)) + b.n * b.width * int64_t(sizeof(int32_t) + sizeof(float));
}

bool CodeSpill::write(const EncodedBatch& b) {
  const int64_t head[3] = {b.first_row, b.n, b.width};
  auto put = [&](const void* p, size_t size, size_t count) {
    if (!error_.empty()) return;
    if (std::fwrite(p, size, count, f_) != count) error_ = path_ + ": write failed: " + std::strerror(errno);
    bytes_ += int64_t(size * count);
  };
  put(head, sizeof(int64_t), 3);
  put(b.tokens, sizeof(int32_t), size_t(b.n));
  put(b.idx, sizeof(int32_t), size_t(b.n * b.width));
  put(b.val, sizeof(float), size_t(b.n * b.width));
  return error_.empty();
}

bool CodeSpill::rewind() {
  if (error_.empty() && std::fflush(f_) != 0) error_ = path_ + ": write failed: " + std::strerror(errno);
  std::rewind(f_);
  return error_.empty();
}

EncodedBatch CodeSpill::read(int64_t sequence_length) {
  int64_t head[3];
  auto get = [&](void* p, size_t size, size_t count) {
    if (std::fread(p, size, count, f_) != count) internal_error(path_ + ": short read of the scratch file");
  };
  get(head, sizeof(int64_t), 3);
  const int64_t n = head[1], width = head[2];
  tokens_.resize(size_t(n));
  idx_.resize(size_t(n * width));
  val_.resize(size_t(n * width));
  get(tokens_.data(), sizeof(int32_t), size_t(n));
  get(idx_.data(), sizeof(int32_t), size_t(n * width));
  get(val_.data(), sizeof(float), size_t(n * width));
  return EncodedBatch{head[0], n, sequence_length, tokens_.data(), idx_.data(), val_.data(), width};
}

void CodeSpill::remove_leftovers(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".codes.", 0) == 0 && name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
      std::filesystem::remove(e.path(), ec);
  }
}

}  // namespace saepipe
