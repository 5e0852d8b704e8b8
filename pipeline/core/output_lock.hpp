// One writer per output directory. Two runs of a stage into the same directory (a job
// re-submitted while its first copy still runs, a requeue racing the old allocation) would
// interleave their temporaries and renames and leave a store or checkpoint that fails only at
// the next stage. Rank 0 of a stage holds an exclusive flock(2) on <dir>/.saepipe.lock while
// the stage runs; a second run finds it held and stops with a user error naming the directory.
// The kernel drops the lock when the process ends however it ends (SIGKILL, node loss), so a
// killed run never blocks its own re-run; the file is removed when the stage ends normally.
#pragma once
#include <string>

namespace saepipe {

class OutputLock {
 public:
  // Takes the lock on `dir` for `stage` or throws a user error when another process holds it.
  // On a file system without flock (some Lustre and NFS mounts) nothing is locked and
  // supported() is false: the caller says so in its log.
  OutputLock(const std::string& dir, const std::string& stage);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  bool supported() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace saepipe
