// Writing an HDF5 output under a temporary name (path + ".tmp") and renaming it when complete,
// so a half-written file never carries its final name (DESIGN.md "Resume").
#pragma once
#include <string>

#include "pipeline/io/h5.hpp"

namespace saepipe::h5 {

class AtomicFile {
 public:
  // Creates path + ".tmp" (truncating a leftover from an interrupted run).
  explicit AtomicFile(std::string path);
  // Not committed: closes and removes the temporary.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  File& file() { return file_; }
  const std::string& tmp_path() const { return tmp_; }
  // Closes the file (every dataset and group of it must be closed by now) and renames it.
  void commit();

 private:
  std::string path_, tmp_;
  File file_;
  bool committed_ = false;
};

}  // namespace saepipe::h5
