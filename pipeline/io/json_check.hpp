// Checking a JSON document (summary.json and the like) against the JSON-Schema subset our
// schemas/*.schema.json use for them: type (object, number, integer, string, boolean, array),
// const, enum, minimum, maximum, required, properties. Other keywords are documentation.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace saepipe {

// User error "<where>: <key>: what is wrong" at the first violation.
void check_json(const nlohmann::json& doc, const nlohmann::json& schema, const std::string& where);

}  // namespace saepipe
