// Writing an HDF5 output under a temporary name (path + ".tmp") and renaming it when complete,
// so a half-written file never carries its final name (DESIGN.md "Resume").
#pragma once
#include <string>

#include "pipeline/io/h5.hpp"

namespace saepipe {
class MpiEnv;
}

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

// The same protocol for a file every rank of `env` writes with parallel HDF5 (h5_parts.hpp):
// created collectively under the temporary name; commit() closes it on every rank (collective),
// then rank 0 renames it and every rank learns the outcome (a failed rename: the same user error
// on every rank). Between the two, every rank must make the same HDF5 calls, and an error on one
// rank must end the run (abort_on_error, pipeline/core/mpi_env.hpp): the others wait in a
// collective.
class CollectiveAtomicFile {
 public:
  CollectiveAtomicFile(std::string path, const MpiEnv& env);
  // Not committed (an error on this rank, before abort_on_error ends the run): removes the
  // temporary without closing it (closing is collective).
  ~CollectiveAtomicFile();
  CollectiveAtomicFile(const CollectiveAtomicFile&) = delete;
  CollectiveAtomicFile& operator=(const CollectiveAtomicFile&) = delete;

  File& file() { return file_; }
  void commit();

 private:
  std::string path_, tmp_;
  const MpiEnv& env_;
  File file_;
  bool committed_ = false;
};

}  // namespace saepipe::h5
