// Files compiled into every binary (schemas/*.json, jobs/quickstart.toml), by file name,
// so a binary validates jobs and layouts without a source tree beside it.
#pragma once
#include <map>
#include <string>

namespace saepipe {
const std::map<std::string, std::string>& embedded_resources();
// The text of one embedded file; throws an internal error if it is not embedded.
const std::string& embedded_resource(const std::string& name);
}  // namespace saepipe
