// The job schema's checks on a TOML document (toml_schema.hpp).
#include "pipeline/core/toml_schema.hpp"

#include <regex>
#include <sstream>
#include <utility>

#include "pipeline/core/errors.hpp"

namespace saepipe {
namespace {

using nlohmann::json;

class SchemaValidator {
 public:
  SchemaValidator(const json& root, std::string path) : root_(root), path_(std::move(path)) {}

  void validate_table(toml::table& table, const json& schema, const std::string& key_path) {
    const json& s = resolve(schema);
    const json& props = s.contains("properties") ? s["properties"] : json::object();
    for (auto&& [k, node] : table) {
      std::string key = join(key_path, std::string(k.str()));
      if (!props.contains(std::string(k.str()))) {
        fail(node, key, "unknown key (allowed here: " + list_keys(props) + ")");
      }
    }
    if (s.contains("required")) {
      for (const auto& r : s["required"]) {
        if (!table.contains(r.get<std::string>())) {
          fail_at(table.source().begin.line, join(key_path, r.get<std::string>()),
                  "required key is missing");
        }
      }
    }
    for (auto& [name, sub] : props.items()) {
      const json& subs = resolve(sub);
      if (!table.contains(name)) {
        if (subs.contains("default")) insert_json(table, name, subs["default"]);
        else continue;
      }
      validate_node(*table.get(name), subs, join(key_path, name));
      // An integer given where a number is expected is stored as a float, so every reader
      // of the resolved job sees one type.
      if (subs.value("type", json()) == "number" && table.get(name)->is_integer())
        table.insert_or_assign(name, double(table.get(name)->as_integer()->get()));
    }
  }

 private:
  const json& resolve(const json& s) const {
    if (s.contains("$ref")) {
      std::string ref = s["$ref"].get<std::string>();
      const std::string prefix = "#/$defs/";
      if (ref.rfind(prefix, 0) != 0) internal_error("schema: unsupported $ref " + ref);
      return root_["$defs"][ref.substr(prefix.size())];
    }
    return s;
  }

  void validate_node(toml::node& node, const json& schema, const std::string& key) {
    const json& s = resolve(schema);
    if (s.contains("type") && s["type"].is_array()) return validate_one_of_types(node, s, key);
    std::string type = s.value("type", "");
    if (type.empty() && s.contains("enum")) type = "string";
    if (type == "object") {
      auto* t = node.as_table();
      if (!t) fail(node, key, "expected a table, got " + describe(node));
      validate_table(*t, s, key);
      return;
    }
    if (type == "array") {
      auto* a = node.as_array();
      if (!a) fail(node, key, "expected an array, got " + describe(node));
      if (s.contains("minItems") && int64_t(a->size()) < s["minItems"].get<int64_t>())
        fail(node, key, "needs at least " + std::to_string(s["minItems"].get<int64_t>()) + " item(s)");
      for (size_t i = 0; i < a->size(); ++i)
        validate_node(*a->get(i), s["items"], key + "[" + std::to_string(i) + "]");
      return;
    }
    if (type == "string") {
      auto* v = node.as_string();
      if (!v) fail(node, key, "expected a string, got " + describe(node));
      const std::string& text = v->get();
      if (s.contains("enum")) {
        bool ok = false;
        for (const auto& e : s["enum"]) ok = ok || e.get<std::string>() == text;
        if (!ok) fail(node, key, "\"" + text + "\" is not one of " + s["enum"].dump());
      }
      if (s.contains("pattern") && !std::regex_search(text, std::regex(s["pattern"].get<std::string>())))
        fail(node, key, "\"" + text + "\" does not match " + s["pattern"].get<std::string>());
      return;
    }
    if (type == "boolean") {
      if (!node.is_boolean()) fail(node, key, "expected true or false, got " + describe(node));
      return;
    }
    if (type == "integer" || type == "number") {
      double value = 0;
      if (auto* i = node.as_integer()) {
        value = double(i->get());
      } else if (auto* f = node.as_floating_point(); f && type == "number") {
        value = f->get();
        if (!std::isfinite(value)) fail(node, key, "must be a finite number");
      } else {
        fail(node, key, "expected " + std::string(type == "integer" ? "an integer" : "a number") +
                            ", got " + describe(node));
      }
      auto bound = [&](const char* name) { return s.contains(name) ? s[name].get<double>() : NAN; };
      auto num = [](double v) { std::ostringstream o; o << v; return o.str(); };
      if (double b = bound("minimum"); !std::isnan(b) && value < b) fail(node, key, "must be >= " + num(b) + ", got " + num(value));
      if (double b = bound("maximum"); !std::isnan(b) && value > b) fail(node, key, "must be <= " + num(b) + ", got " + num(value));
      if (double b = bound("exclusiveMinimum"); !std::isnan(b) && value <= b) fail(node, key, "must be > " + num(b) + ", got " + num(value));
      if (double b = bound("exclusiveMaximum"); !std::isnan(b) && value >= b) fail(node, key, "must be < " + num(b) + ", got " + num(value));
      return;
    }
    internal_error("schema: unsupported type '" + type + "' at " + key);
  }

  // "type": [...] of scalar types with an "enum" of their values (prepend_bos: true, false or
  // "auto"): the value must be one of the enum's.
  void validate_one_of_types(const toml::node& node, const json& s, const std::string& key) {
    if (!s.contains("enum")) internal_error("schema: a list of types needs an enum at " + key);
    json v;
    if (auto b = node.value_exact<bool>()) v = *b;
    else if (auto t = node.value_exact<std::string>()) v = *t;
    else if (auto i = node.value_exact<int64_t>()) v = *i;
    bool ok = false;
    for (const auto& e : s["enum"]) ok = ok || (!v.is_null() && e == v);
    if (!ok) {
      std::string allowed;
      for (const auto& e : s["enum"]) allowed += (allowed.empty() ? "" : ", ") + e.dump();
      fail(node, key, "expected one of " + allowed + ", got " + describe(node));
    }
  }

  // Inserts a JSON default into a TOML table / array (toml++ inserts values, not nodes).
  static void insert_json(toml::table& t, const std::string& k, const json& v) {
    if (v.is_object()) {
      toml::table sub;
      for (auto& [kk, x] : v.items()) insert_json(sub, kk, x);
      t.insert_or_assign(k, std::move(sub));
    } else if (v.is_array()) {
      toml::array a;
      for (auto& x : v) push_json(a, x);
      t.insert_or_assign(k, std::move(a));
    } else if (v.is_string()) {
      t.insert_or_assign(k, v.get<std::string>());
    } else if (v.is_boolean()) {
      t.insert_or_assign(k, v.get<bool>());
    } else if (v.is_number_integer()) {
      t.insert_or_assign(k, v.get<int64_t>());
    } else {
      t.insert_or_assign(k, v.get<double>());
    }
  }
  static void push_json(toml::array& a, const json& v) {
    if (v.is_string()) a.push_back(v.get<std::string>());
    else if (v.is_boolean()) a.push_back(v.get<bool>());
    else if (v.is_number_integer()) a.push_back(v.get<int64_t>());
    else if (v.is_number()) a.push_back(v.get<double>());
    else internal_error("schema: nested default arrays are not supported");
  }

  static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
  static std::string list_keys(const json& props) {
    std::string out;
    for (auto& [k, _] : props.items()) out += (out.empty() ? "" : ", ") + k;
    return out;
  }
  static std::string describe(const toml::node& n) {
    std::ostringstream o;
    switch (n.type()) {
      case toml::node_type::string: o << "string \"" << n.as_string()->get() << "\""; break;
      case toml::node_type::integer: o << "integer " << n.as_integer()->get(); break;
      case toml::node_type::floating_point: o << "float " << n.as_floating_point()->get(); break;
      case toml::node_type::boolean: o << "boolean " << (n.as_boolean()->get() ? "true" : "false"); break;
      case toml::node_type::table: o << "a table"; break;
      case toml::node_type::array: o << "an array"; break;
      default: o << "a date/time"; break;
    }
    return o.str();
  }
  [[noreturn]] void fail(const toml::node& node, const std::string& key, const std::string& what) {
    fail_at(node.source().begin.line, key, what);
  }
  [[noreturn]] void fail_at(uint32_t line, const std::string& key, const std::string& what) {
    std::string where = path_;
    if (line > 0) where += ":" + std::to_string(line);
    user_error(where + ": " + key + ": " + what);
  }

  const json& root_;
  std::string path_;
};

}  // namespace

void validate_toml(toml::table& table, const nlohmann::json& schema, const std::string& path) {
  SchemaValidator(schema, path).validate_table(table, schema, "");
}

}  // namespace saepipe
