// Typed errors and the checks that raise them. The exit-code policy lives in one place
// (pipeline/core/stage_main.cpp); library code only throws.
#pragma once
#include <stdexcept>
#include <string>

namespace saepipe {

// Where an error was raised. std::source_location needs a builtin clang 14 lacks (the
// fuzzing build uses clang), so this carries the same two facts through builtins both
// compilers have.
struct SourceLocation {
  const char* file = "";
  unsigned line_number = 0;
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          unsigned line = __builtin_LINE()) {
    return {file, line};
  }
  const char* file_name() const { return file; }
  unsigned line() const { return line_number; }
};

// Exit codes are a contract (DESIGN.md "Errors and exit codes").
enum class ErrorKind : int { Internal = 1, User = 2, Corrupt = 3 };

class SaeError : public std::runtime_error {
 public:
  SaeError(ErrorKind kind, const std::string& message,
           SourceLocation where = SourceLocation::current());
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return static_cast<int>(kind_); }
  const char* file() const { return file_; }
  int line() const { return line_; }
  // Set when every rank raised this error together (MpiEnv::all_or_none): the top level then
  // exits cleanly on all ranks instead of aborting.
  bool collective() const { return collective_; }
  void set_collective() { collective_ = true; }

 private:
  ErrorKind kind_;
  const char* file_;
  int line_;
  bool collective_ = false;
};

// Bad job file, path or input that does not match a schema: exit 2.
[[noreturn]] void user_error(const std::string& message,
                             SourceLocation where = SourceLocation::current());
// Checksum failure, NaN/Inf in inputs: exit 3.
[[noreturn]] void corrupt_error(const std::string& message,
                                SourceLocation where = SourceLocation::current());
// A failed library call or a broken invariant: exit 1.
[[noreturn]] void internal_error(const std::string& message,
                                 SourceLocation where = SourceLocation::current());

// Checks for C APIs that report failure through a return code.
void check_mpi(int rc, const char* call, SourceLocation where = SourceLocation::current());

}  // namespace saepipe

#define SAE_MPI_CHECK(call) ::saepipe::check_mpi((call), #call)
// HDF5 returns a negative value (or H5I_INVALID_HID) on failure.
#define SAE_H5_CHECK(call)                                                        \
  ([&]() {                                                                        \
    auto sae_h5_rc_ = (call);                                                     \
    if (sae_h5_rc_ < 0) ::saepipe::internal_error(std::string("HDF5 call failed: ") + #call); \
    return sae_h5_rc_;                                                            \
  }())
#define SAE_ASSERT(cond, msg) \
  do { if (!(cond)) ::saepipe::internal_error(std::string("assertion failed: " #cond ": ") + (msg)); } while (0)
