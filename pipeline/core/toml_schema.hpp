// A TOML document checked against a JSON Schema (schemas/job.schema.json), with its defaults
// filled in place. Supported: type (object/array/string/integer/number/boolean), enum, minimum,
// maximum, exclusiveMinimum, exclusiveMaximum, pattern, minItems, items, properties,
// additionalProperties: false, required, default, $ref to #/$defs/<name>. A violation is a user
// error "<path>:<line>: <dotted key>: <what>".
#pragma once
#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include <nlohmann/json.hpp>
#include <string>

namespace saepipe {

void validate_toml(toml::table& table, const nlohmann::json& schema, const std::string& path);

}  // namespace saepipe
