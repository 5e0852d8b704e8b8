#include "pipeline/io/atomic_h5.hpp"

#include <filesystem>

#include "pipeline/core/errors.hpp"

namespace saepipe::h5 {

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), file_(create_file(tmp_)) {}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  file_.reset();
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);  // best effort: we are already failing
}

void AtomicFile::commit() {
  file_.close();
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) user_error(path_ + ": cannot rename the finished file into place: " + ec.message());
  committed_ = true;
}

}  // namespace saepipe::h5
