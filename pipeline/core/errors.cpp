#include "pipeline/core/errors.hpp"

#include <mpi.h>

namespace saepipe {

SaeError::SaeError(ErrorKind kind, const std::string& message, SourceLocation where)
    : std::runtime_error(message), kind_(kind), file_(where.file_name()), line_(int(where.line())) {}

void user_error(const std::string& message, SourceLocation where) {
  throw SaeError(ErrorKind::User, message, where);
}
void corrupt_error(const std::string& message, SourceLocation where) {
  throw SaeError(ErrorKind::Corrupt, message, where);
}
void internal_error(const std::string& message, SourceLocation where) {
  throw SaeError(ErrorKind::Internal, message, where);
}

void check_mpi(int rc, const char* call, SourceLocation where) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  internal_error(std::string("MPI call failed: ") + call + ": " + std::string(text, len), where);
}

}  // namespace saepipe
