// Running shell commands from the driver (sbatch, scontrol) and writing shell scripts.
#pragma once
#include <string>

namespace saepipe {

// Single-quoted for bash: safe for any text.
std::string shell_quote(const std::string& s);

// Runs `command` through /bin/sh and returns its stdout without trailing newlines; its exit
// code in *rc (1 when it did not exit normally).
std::string capture(const std::string& command, int* rc);

}  // namespace saepipe
