// The HDF5 layer's attributes (pipeline/io/h5.hpp, Object): scalar, vector and string
// attributes, read back with their kind checked.
#include <algorithm>
#include <string>
#include <vector>

#include "pipeline/core/errors.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/h5_internal.hpp"

namespace saepipe::h5 {

using detail::check;
using detail::check_read;
using detail::hdf5_reason;
using detail::memory_type;

namespace {

// Opens attribute `name` of `obj`, user error when missing.
Attribute open_attribute(const Object& obj, const std::string& name) {
  if (!obj.has_attribute(name)) user_error(obj.where() + ": attribute '" + name + "' is missing");
  return Attribute(check_read(H5Aopen(obj.id(), name.c_str(), H5P_DEFAULT), obj.where(), "open attribute '" + name + "'"));
}

// Creates attribute `name` (replacing one of that name) of the given file type and shape.
Attribute create_attribute(const Object& obj, const std::string& name, hid_t type, int64_t n /* -1: scalar */) {
  const std::string what = "attribute '" + name + "'";
  if (obj.has_attribute(name)) check(H5Adelete(obj.id(), name.c_str()), obj.where(), "delete " + what);
  Dataspace space;
  if (n < 0) {
    space = Dataspace(check(H5Screate(H5S_SCALAR), obj.where(), "H5Screate"));
  } else {
    const hsize_t dim = hsize_t(n);
    space = Dataspace(check(H5Screate_simple(1, &dim, nullptr), obj.where(), "H5Screate_simple"));
  }
  return Attribute(check(H5Acreate2(obj.id(), name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                         obj.where(), "create " + what));
}

// Reads a numeric attribute of `expected` kind (Integer, or Integer/Float for doubles).
template <class T>
std::vector<T> read_numeric_attribute(const Object& obj, const std::string& name, bool allow_float) {
  const auto kind = obj.attribute_kind(name);
  if (kind != Object::AttributeKind::Integer && !(allow_float && kind == Object::AttributeKind::Float))
    user_error(obj.where() + ": attribute '" + name + "' is " +
               (kind == Object::AttributeKind::String ? "a string" : "not a number") + ", expected " +
               (allow_float ? "a number" : "an integer"));
  Attribute attr = open_attribute(obj, name);
  std::vector<T> values(size_t(obj.attribute_size(name)));
  if (!values.empty())
    check_read(H5Aread(attr.id(), memory_type<T>(), values.data()), obj.where(), "read attribute '" + name + "'");
  return values;
}

template <class T>
T read_scalar_attribute(const Object& obj, const std::string& name, bool allow_float) {
  std::vector<T> v = read_numeric_attribute<T>(obj, name, allow_float);
  if (v.size() != 1)
    user_error(obj.where() + ": attribute '" + name + "' holds " + std::to_string(v.size()) +
               " values, expected one");
  return v[0];
}

herr_t collect_attribute(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

}  // namespace

bool Object::has_attribute(const std::string& name) const {
  return check_read(H5Aexists(id_, name.c_str()), where(), "H5Aexists '" + name + "'") > 0;
}

std::vector<std::string> Object::attribute_names() const {
  std::vector<std::string> names;
  hsize_t idx = 0;
  check_read(H5Aiterate2(id_, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attribute, &names), where(), "list attributes");
  return names;
}

Object::AttributeKind Object::attribute_kind(const std::string& name) const {
  Attribute attr = open_attribute(*this, name);
  Datatype t(check_read(H5Aget_type(attr.id()), where(), "H5Aget_type '" + name + "'"));
  switch (check_read(H5Tget_class(t.id()), where(), "H5Tget_class '" + name + "'")) {
    case H5T_STRING: return AttributeKind::String;
    case H5T_INTEGER: return AttributeKind::Integer;
    case H5T_FLOAT: return AttributeKind::Float;
    default: return AttributeKind::Other;
  }
}

int64_t Object::attribute_size(const std::string& name) const {
  Attribute attr = open_attribute(*this, name);
  Dataspace space(check_read(H5Aget_space(attr.id()), where(), "H5Aget_space '" + name + "'"));
  return check_read(H5Sget_simple_extent_npoints(space.id()), where(), "attribute size '" + name + "'");
}

void Object::write_string_attribute(const std::string& name, const std::string& value) const {
  Datatype t(check(H5Tcopy(H5T_C_S1), where(), "H5Tcopy"));
  check(H5Tset_size(t.id(), H5T_VARIABLE), where(), "H5Tset_size");
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), where(), "H5Tset_cset");
  Attribute attr = create_attribute(*this, name, t.id(), -1);
  const char* text = value.c_str();
  check(H5Awrite(attr.id(), t.id(), &text), where(), "write attribute '" + name + "'");
}

void Object::write_int_attribute(const std::string& name, int64_t value) const {
  Attribute attr = create_attribute(*this, name, H5T_STD_I64LE, -1);
  check(H5Awrite(attr.id(), H5T_NATIVE_INT64, &value), where(), "write attribute '" + name + "'");
}

void Object::write_double_attribute(const std::string& name, double value) const {
  Attribute attr = create_attribute(*this, name, H5T_IEEE_F64LE, -1);
  check(H5Awrite(attr.id(), H5T_NATIVE_DOUBLE, &value), where(), "write attribute '" + name + "'");
}

void Object::write_int_vector_attribute(const std::string& name, const std::vector<int64_t>& values) const {
  Attribute attr = create_attribute(*this, name, H5T_STD_I64LE, int64_t(values.size()));
  if (!values.empty())
    check(H5Awrite(attr.id(), H5T_NATIVE_INT64, values.data()), where(), "write attribute '" + name + "'");
}

void Object::write_double_vector_attribute(const std::string& name, const std::vector<double>& values) const {
  Attribute attr = create_attribute(*this, name, H5T_IEEE_F64LE, int64_t(values.size()));
  if (!values.empty())
    check(H5Awrite(attr.id(), H5T_NATIVE_DOUBLE, values.data()), where(), "write attribute '" + name + "'");
}

std::string Object::read_string_attribute(const std::string& name) const {
  if (attribute_kind(name) != AttributeKind::String)
    user_error(where() + ": attribute '" + name + "' is not a string");
  if (attribute_size(name) != 1) user_error(where() + ": attribute '" + name + "' is not a single string");
  Attribute attr = open_attribute(*this, name);
  Datatype stored(check_read(H5Aget_type(attr.id()), where(), "H5Aget_type '" + name + "'"));
  const std::string what = "read attribute '" + name + "'";
  if (check_read(H5Tis_variable_str(stored.id()), where(), "H5Tis_variable_str") > 0) {
    Datatype mem(check(H5Tcopy(H5T_C_S1), where(), "H5Tcopy"));
    check(H5Tset_size(mem.id(), H5T_VARIABLE), where(), "H5Tset_size");
    check_read(H5Tset_cset(mem.id(), H5Tget_cset(stored.id())), where(), "the string attribute's character set");
    char* text = nullptr;
    check_read(H5Aread(attr.id(), mem.id(), &text), where(), what);
    std::string value = text != nullptr ? text : "";
    if (text != nullptr) H5free_memory(text);
    return value;
  }
  // Fixed length (h5py writes numpy bytes this way): read the bytes, drop the padding.
  const size_t size = H5Tget_size(stored.id());
  if (size == 0) corrupt_error(where() + ": attribute '" + name + "': H5Tget_size failed (a damaged file?)" + hdf5_reason());
  std::string value(size, '\0');
  check_read(H5Aread(attr.id(), stored.id(), value.data()), where(), what);
  value.erase(std::find(value.begin(), value.end(), '\0'), value.end());
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}

int64_t Object::read_int_attribute(const std::string& name) const {
  return read_scalar_attribute<int64_t>(*this, name, false);
}
double Object::read_double_attribute(const std::string& name) const {
  return read_scalar_attribute<double>(*this, name, true);
}
std::vector<int64_t> Object::read_int_vector_attribute(const std::string& name) const {
  return read_numeric_attribute<int64_t>(*this, name, false);
}
std::vector<double> Object::read_double_vector_attribute(const std::string& name) const {
  return read_numeric_attribute<double>(*this, name, true);
}

}  // namespace saepipe::h5
