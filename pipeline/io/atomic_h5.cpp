#include "pipeline/io/atomic_h5.hpp"

#include <filesystem>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/mpi_env.hpp"
#include "pipeline/io/h5_parts.hpp"

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

CollectiveAtomicFile::CollectiveAtomicFile(std::string path, const MpiEnv& env)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), env_(env), file_(create_file_collective(tmp_, env.comm())) {}

CollectiveAtomicFile::~CollectiveAtomicFile() {
  if (committed_) return;
  // Only an error on this rank gets here (one every rank sees is raised before the file exists or
  // after it is closed), and the run is about to be aborted (abort_on_error): closing is collective
  // and the other ranks would never join it, so the handle is left open and the temporary removed.
  file_.release();
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);  // best effort: we are already failing
}

void CollectiveAtomicFile::commit() {
  file_.close();  // collective: every rank's writes are in the file once it returns
  env_.all_or_none([&] {
    if (!env_.is_root()) return;
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) user_error(path_ + ": cannot rename the finished file into place: " + ec.message());
  });
  committed_ = true;
}

}  // namespace saepipe::h5
