// `saepipe inspect PATH`: recognise an output (activation store, SAE checkpoint, stats) or a
// GGUF model file (what harvest would read from it),
// check it against its schema in schemas/, and return a human-readable summary.
#pragma once
#include <string>

namespace saepipe {

// User error (exit 2) naming the file when PATH is none of the known outputs or breaks its
// schema; corrupt error (exit 3) when a checksum fails while reading.
std::string inspect_output(const std::string& path);

}  // namespace saepipe
