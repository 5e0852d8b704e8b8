// Small file-system helpers: outputs are written under a temporary name and renamed when
// complete, so an interrupted stage never leaves a half-written file under its final name.
#pragma once
#include <cstdint>
#include <string>

namespace saepipe {

// A failure to create or write an output, from its errno: a full disk, an exceeded quota or an
// I/O error is the system's (exit 1); anything else (no permission, a read-only or missing
// directory) is the user's (exit 2). The message gets strerror(err) appended.
[[noreturn]] void output_error(const std::string& message, int err);
bool is_system_output_errno(int err);  // the split above

// Creates the directory and its parents; user error naming it if that fails.
void make_dirs(const std::string& dir);
// Writes text to path + ".tmp.<pid>" then renames it over path (parent directories created).
// A failed write (disk full) is a system error (exit 1) and leaves no temporary file.
void write_file_atomic(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);
bool path_exists(const std::string& path);

// Bytes an unprivileged writer may still use on the file system holding `path` (statvfs's
// f_bavail: quotas are not counted); -1 when it can't be told.
int64_t free_bytes(const std::string& path);
// System error (exit 1) naming `dir` when its file system has fewer than `needed` bytes free, so
// that a long stage fails at its start rather than hours in; `what` says what needs them.
// Does nothing when the free space can't be told.
void require_free_space(const std::string& dir, int64_t needed, const std::string& what);
// A byte count for people: "812 B", "16.8 MB", "1.2 TB" (decimal units, as df -H).
std::string format_bytes(int64_t bytes);

}  // namespace saepipe
