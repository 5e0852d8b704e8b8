#include "pipeline/io/layout_check.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/resources.hpp"
#include "pipeline/io/h5.hpp"

namespace saepipe {

namespace {

using json = nlohmann::json;

const std::set<std::string> kDtypes = {"float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8"};
const std::set<std::string> kKinds = {"string", "int64", "float64", "int64[]", "float64[]"};

[[noreturn]] void bad_layout(const std::string& what) { internal_error("malformed HDF5 layout: " + what); }

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Symbolic dimensions: the value each symbol is bound to and where that came from.
class Dims {
 public:
  explicit Dims(const h5::File& root) : root_(root) {}

  void check(const h5::Dataset& ds, const json& shape) {
    const std::vector<int64_t> dims = ds.dims();
    if (!shape.is_array()) bad_layout(ds.name() + ": shape must be an array");
    if (dims.size() != shape.size())
      user_error(ds.where() + ": shape " + shape_text(dims) + " has rank " + std::to_string(dims.size()) +
                 ", expected " + shape.dump());
    for (size_t i = 0; i < dims.size(); ++i) {
      const std::string dim = "dim " + std::to_string(i);
      if (shape[i].is_number_integer()) {
        if (dims[i] != shape[i].get<int64_t>())
          user_error(ds.where() + ": " + dim + " is " + std::to_string(dims[i]) + ", expected " + shape[i].dump());
        continue;
      }
      if (!shape[i].is_string()) bad_layout(ds.name() + ": a dim must be an integer or a symbol");
      const std::string sym = shape[i].get<std::string>();
      auto it = bound_.find(sym);
      if (it == bound_.end()) it = bind(sym, dims[i], ds.name() + " " + dim);
      if (it->second.value != dims[i])
        user_error(ds.where() + ": " + dim + " (" + sym + ") is " + std::to_string(dims[i]) + " but " + sym + " is " +
                   std::to_string(it->second.value) + " (from " + it->second.origin + ")");
    }
  }

 private:
  struct Binding {
    int64_t value;
    std::string origin;
  };
  // A symbol named like an integer root attribute takes the attribute's value.
  std::map<std::string, Binding>::iterator bind(const std::string& sym, int64_t seen, const std::string& where) {
    if (root_.has_attribute(sym) && root_.attribute_kind(sym) == h5::Object::AttributeKind::Integer &&
        root_.attribute_size(sym) == 1)
      return bound_.emplace(sym, Binding{root_.read_int_attribute(sym), "attribute '" + sym + "'"}).first;
    return bound_.emplace(sym, Binding{seen, where}).first;
  }

  const h5::File& root_;
  std::map<std::string, Binding> bound_;
};

// An attribute's value as JSON, for const/enum comparisons.
json attribute_value(const h5::Object& obj, const std::string& name, const std::string& kind) {
  if (kind == "string") return obj.read_string_attribute(name);
  if (kind == "int64") return obj.read_int_attribute(name);
  if (kind == "float64") return obj.read_double_attribute(name);
  if (kind == "int64[]") return obj.read_int_vector_attribute(name);
  return obj.read_double_vector_attribute(name);
}

void check_attribute(const h5::File& f, const std::string& name, const json& spec_in) {
  const json spec = spec_in.is_string() ? json{{"type", spec_in}} : spec_in;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string() ||
      !kKinds.count(spec["type"].get<std::string>()))
    bad_layout("attribute " + name + ": needs a type among string, int64, float64, int64[], float64[]");
  const std::string kind = spec["type"].get<std::string>();
  if (!f.has_attribute(name)) {
    if (spec.value("optional", false)) return;
    user_error(f.file_path() + ": attribute '" + name + "' is missing");
  }
  const auto actual = f.attribute_kind(name);
  const bool scalar = kind.back() != ']';
  const bool kind_ok = kind == "string"                  ? actual == h5::Object::AttributeKind::String
                       : kind.rfind("int64", 0) == 0 ? actual == h5::Object::AttributeKind::Integer
                                                         : actual == h5::Object::AttributeKind::Integer ||
                                                               actual == h5::Object::AttributeKind::Float;
  if (!kind_ok || (scalar && f.attribute_size(name) != 1)) {
    const char* names[] = {"a string", "an integer", "a float", "of another type"};
    user_error(f.file_path() + ": attribute '" + name + "' is " + names[int(actual)] +
               (scalar && kind_ok ? " array" : "") + ", expected " + kind);
  }
  const json value = attribute_value(f, name, kind);
  if (spec.contains("const") && value != spec["const"])
    user_error(f.file_path() + ": attribute '" + name + "' is " + value.dump() + ", expected " + spec["const"].dump());
  if (spec.contains("enum")) {
    const json& options = spec["enum"];
    if (!options.is_array()) bad_layout("attribute " + name + ": enum must be an array");
    if (std::find(options.begin(), options.end(), value) == options.end())
      user_error(f.file_path() + ": attribute '" + name + "' is " + value.dump() + ", expected one of " + options.dump());
  }
}

void check_dataset(const h5::Dataset& ds, const json& spec, Dims& dims) {
  dims.check(ds, spec.at("shape"));
  if (spec.contains("dtype")) {
    const json allowed = spec["dtype"].is_array() ? spec["dtype"] : json::array({spec["dtype"]});
    for (const json& t : allowed)
      if (!t.is_string() || !kDtypes.count(t.get<std::string>())) bad_layout(ds.name() + ": unknown dtype " + t.dump());
    const std::string actual = ds.type_name();
    if (std::find(allowed.begin(), allowed.end(), json(actual)) == allowed.end())
      user_error(ds.where() + ": dtype " + actual + ", expected " +
                 (allowed.size() == 1 ? allowed[0].get<std::string>() : "one of " + allowed.dump()));
  }
  if (spec.value("virtual", false) && !ds.is_virtual()) user_error(ds.where() + ": expected a virtual dataset");
  if (spec.value("chunked", false) && !ds.is_chunked()) user_error(ds.where() + ": expected chunked storage");
  if (spec.value("fletcher32", false) && !ds.has_fletcher32())
    user_error(ds.where() + ": expected Fletcher32 checksums (no checksum filter)");
}

}  // namespace

void check_h5_layout(const std::string& h5_path, const json& layout) {
  if (!layout.is_object()) bad_layout("not an object");
  h5::File f = h5::open_file(h5_path);

  // schema and version first: a file of another kind or version fails with that, not a shape.
  if (layout.contains("schema")) {
    const std::string expected = layout["schema"].get<std::string>();
    if (!f.has_attribute("schema"))
      user_error(h5_path + ": attribute 'schema' is missing (expected '" + expected + "')");
    const std::string schema = f.read_string_attribute("schema");
    if (schema != expected) user_error(h5_path + ": attribute 'schema' is '" + schema + "', expected '" + expected + "'");
  }
  if (layout.contains("version")) {
    const int64_t expected = layout["version"].get<int64_t>();
    if (!f.has_attribute("version")) user_error(h5_path + ": attribute 'version' is missing");
    const int64_t version = f.read_int_attribute("version");
    if (version != expected)
      user_error(h5_path + ": version " + std::to_string(version) + " is not supported (expected " +
                 std::to_string(expected) + ")");
  }

  if (layout.contains("attributes")) {
    if (!layout["attributes"].is_object()) bad_layout("attributes must be an object");
    for (const auto& [name, spec] : layout["attributes"].items()) check_attribute(f, name, spec);
  }

  if (!layout.contains("datasets")) return;
  if (!layout["datasets"].is_object()) bad_layout("datasets must be an object");
  Dims dims(f);
  for (const auto& [path, spec] : layout["datasets"].items()) {
    if (!spec.is_object() || !spec.contains("shape")) bad_layout(path + ": needs a shape");
    const bool optional = spec.value("optional", false);
    std::vector<std::string> names;
    if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0) {
      const std::string group = path.substr(0, path.size() - 2);
      if (f.exists(group)) {
        h5::Group g = f.open_group(group);
        for (const std::string& name : g.list_datasets()) names.push_back(group + "/" + name);
      }
      if (names.empty() && !optional) user_error(h5_path + ": /" + group + ": no datasets (expected at least one)");
    } else if (f.exists(path)) {
      names.push_back(path);
    } else if (!optional) {
      user_error(h5_path + ": /" + path + ": dataset is missing");
    }
    for (const std::string& name : names) check_dataset(f.open_dataset(name), spec, dims);
  }
}

json embedded_h5_layout(const std::string& schema_file, const std::string& name) {
  json doc;
  try {
    doc = json::parse(embedded_resource(schema_file));
  } catch (const json::exception& e) {
    internal_error(schema_file + ": embedded schema is not valid JSON: " + e.what());
  }
  if (!doc.contains("h5_layouts") || !doc["h5_layouts"].contains(name))
    internal_error(schema_file + ": no HDF5 layout '" + name + "'");
  return doc["h5_layouts"][name];
}

}  // namespace saepipe
