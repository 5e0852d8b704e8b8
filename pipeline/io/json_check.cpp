#include "pipeline/io/json_check.hpp"

#include <algorithm>

#include "pipeline/core/errors.hpp"

namespace saepipe {

namespace {

bool has_type(const nlohmann::json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "number") return v.is_number();
  if (type == "integer") return v.is_number_integer();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "array") return v.is_array();
  return true;
}

void check_node(const nlohmann::json& v, const nlohmann::json& s, const std::string& where, const std::string& key) {
  auto fail = [&](const std::string& what) { user_error(where + ": " + (key.empty() ? "" : key + ": ") + what); };
  if (s.contains("type") && !has_type(v, s["type"].get<std::string>()))
    fail("is " + std::string(v.type_name()) + ", expected " + s["type"].get<std::string>());
  if (s.contains("const") && v != s["const"]) fail(v.dump() + " is not " + s["const"].dump());
  if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
    fail(v.dump() + " is not one of " + s["enum"].dump());
  if (v.is_number()) {
    if (s.contains("minimum") && v.get<double>() < s["minimum"].get<double>()) fail(v.dump() + " is below " + s["minimum"].dump());
    if (s.contains("maximum") && v.get<double>() > s["maximum"].get<double>()) fail(v.dump() + " is above " + s["maximum"].dump());
  }
  if (v.is_object()) {
    if (s.contains("required"))
      for (const auto& r : s["required"])
        if (!v.contains(r.get<std::string>())) fail("required key \"" + r.get<std::string>() + "\" is missing");
    if (s.contains("properties"))
      for (const auto& [name, sub] : s["properties"].items())
        if (v.contains(name)) check_node(v[name], sub, where, key.empty() ? name : key + "." + name);
  }
}

}  // namespace

void check_json(const nlohmann::json& doc, const nlohmann::json& schema, const std::string& where) {
  check_node(doc, schema, where, "");
}

}  // namespace saepipe
