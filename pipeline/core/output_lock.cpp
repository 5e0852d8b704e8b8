#include "pipeline/core/output_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pipeline/core/errors.hpp"

namespace saepipe {

OutputLock::OutputLock(const std::string& dir, const std::string& stage) : path_(dir + "/.saepipe.lock") {
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) internal_error(path_ + ": cannot open the output lock: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    fd_ = fd;
    return;
  }
  const int err = errno;
  ::close(fd);
  if (err == EWOULDBLOCK)
    user_error(dir + " is being written by another run of " + stage + " (it holds " + path_ +
               "); wait for that run to end or stop it, then run this again");
  if (err != ENOLCK && err != EINVAL && err != ENOTSUP && err != ENOSYS)
    internal_error(path_ + ": flock: " + std::strerror(err));
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
}

}  // namespace saepipe
