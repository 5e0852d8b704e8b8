#include "pipeline/core/resources.hpp"

#include "pipeline/core/errors.hpp"

namespace saepipe {
const std::string& embedded_resource(const std::string& name) {
  const auto& all = embedded_resources();
  auto it = all.find(name);
  if (it == all.end()) internal_error("resource not embedded in this build: " + name);
  return it->second;
}
}  // namespace saepipe
