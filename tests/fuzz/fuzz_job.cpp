// Fuzzes the job loader: TOML parsing, schema validation, defaults, cross-field checks.
#include <cstdint>
#include <string>

#include "pipeline/core/job.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  saepipe::fuzz::expect_clean_rejection([&] {
    saepipe::Job job = saepipe::parse_job(text, "fuzz.toml");
    // A job that parses resolves to a text that parses to the same job.
    saepipe::Job again = saepipe::parse_job(job.resolved_toml, "resolved.toml");
    if (again.resolved_toml != job.resolved_toml) std::abort();
  });
  return 0;
}
