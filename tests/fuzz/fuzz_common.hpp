// Shared rule of the fuzz targets: a parser may reject any input with a user error (exit 2)
// or a corruption error (exit 3); an internal error, a crash or a sanitizer report on
// arbitrary input is a finding.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "pipeline/core/errors.hpp"

namespace saepipe::fuzz {

template <class Fn>
void expect_clean_rejection(Fn&& fn) {
  try {
    fn();
  } catch (const SaeError& e) {
    if (e.kind() == ErrorKind::Internal) {
      std::fprintf(stderr, "internal error on fuzzed input: %s\n", e.what());
      std::abort();
    }
  }
}

// A per-process scratch directory for parsers that read files.
inline std::string scratch_dir() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("saepipe-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {  // libFuzzer ends with exit(): leave nothing behind in /tmp
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                      ("saepipe-fuzz-" + std::to_string(::getpid())),
                                  ec);
    });
    return d.string();
  }();
  return dir;
}

inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

}  // namespace saepipe::fuzz
