// Small file-system helpers: outputs are written under a temporary name and renamed when
// complete, so an interrupted stage never leaves a half-written file under its final name.
#pragma once
#include <string>

namespace saepipe {

// Creates the directory and its parents; user error naming it if that fails.
void make_dirs(const std::string& dir);
// Writes text to path + ".tmp.<pid>" then renames it over path (parent directories created).
// A failed write (disk full) is a system error (exit 1) and leaves no temporary file.
void write_file_atomic(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);
bool path_exists(const std::string& path);

}  // namespace saepipe
