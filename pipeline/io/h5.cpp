#include "pipeline/io/h5.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <type_traits>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/h5_internal.hpp"

namespace saepipe::h5 {

// 16-bit values are read and written as raw little-endian bits.
static_assert(std::endian::native == std::endian::little, "saepipe's HDF5 layer assumes a little-endian host");

using detail::check;
using detail::check_read;
using detail::hdf5_reason;
using detail::memory_type;

namespace {

// The most specific entry of HDF5's error stack (walked upwards) into a string.
herr_t innermost_error(unsigned n, const H5E_error2_t* err, void* data) {
  if (n != 0 || err == nullptr) return 0;  // an upward walk starts at the most specific entry
  auto* reason = static_cast<std::string*>(data);
  if (err->desc != nullptr && err->desc[0] != '\0') {
    *reason = err->desc;
  } else {
    char msg[256] = {0};
    if (H5Eget_msg(err->min_num, nullptr, msg, sizeof msg) > 0) *reason = msg;
  }
  return 0;
}

}  // namespace

std::string detail::hdf5_reason() {
  std::string reason;
  if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, &reason) < 0) return "";
  // The POSIX driver's description ("file write failed: time = ..., errno = 28, error message =
  // 'No space left on device', buf = ...") cut to its operation and cause.
  const std::string key = "error message = '";
  const size_t at = reason.find(key), end = at == std::string::npos ? at : reason.find('\'', at + key.size());
  if (end != std::string::npos)
    reason = reason.substr(0, reason.find(':')) + ": " + reason.substr(at + key.size(), end - at - key.size());
  return reason.empty() ? "" : " (HDF5: " + reason + ")";
}

namespace {

std::string join_path(const std::string& parent, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  return parent == "/" ? "/" + name : parent + "/" + name;
}

std::string rows_text(int64_t first, int64_t count) {
  if (count <= 1) return "row " + std::to_string(first);
  return "rows " + std::to_string(first) + ".." + std::to_string(first + count - 1);
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return std::vector<hsize_t>(v.begin(), v.end()); }

// A property list of `cls`, checked.
PropList make_plist(hid_t cls, const std::string& where) {
  return PropList(check(H5Pcreate(cls), where, "H5Pcreate"));
}

// Layout of a classified float type: sign pos, exponent pos/size, mantissa pos/size, bias.
struct FloatFields {
  size_t spos, epos, esize, mpos, msize, ebias;
  bool operator==(const FloatFields&) const = default;
};
constexpr FloatFields kF32{31, 23, 8, 0, 23, 127};
constexpr FloatFields kF64{63, 52, 11, 0, 52, 1023};
constexpr FloatFields kF16{15, 10, 5, 0, 10, 15};
constexpr FloatFields kBF16{15, 7, 8, 0, 7, 127};

// Which Type an HDF5 type is (any byte order); false when none.
bool classify(hid_t t, Type* out) {
  const H5T_class_t cls = H5Tget_class(t);
  const size_t size = H5Tget_size(t);
  std::optional<Type> found;
  if (cls == H5T_FLOAT) {
    FloatFields f{};
    if (H5Tget_fields(t, &f.spos, &f.epos, &f.esize, &f.mpos, &f.msize) < 0) return false;
    f.ebias = H5Tget_ebias(t);
    const bool dense = H5Tget_offset(t) == 0 && H5Tget_precision(t) == size * 8;
    if (dense && size == 4 && f == kF32) found = Type::Float32;
    if (dense && size == 8 && f == kF64) found = Type::Float64;
    if (dense && size == 2 && f == kF16) found = Type::Float16;
    if (dense && size == 2 && f == kBF16) found = Type::BFloat16;
  } else if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(t) == H5T_SGN_2;
    if (is_signed && size == 4) found = Type::Int32;
    if (is_signed && size == 8) found = Type::Int64;
    if (!is_signed && size == 1) found = Type::UInt8;
  }
  if (found) *out = *found;
  return found.has_value();
}

std::string describe_type(hid_t t) {
  Type known;
  if (classify(t, &known)) return to_string(known);
  const size_t bits = H5Tget_size(t) * 8;
  switch (H5Tget_class(t)) {
    case H5T_INTEGER: return (H5Tget_sign(t) == H5T_SGN_2 ? "int" : "uint") + std::to_string(bits);
    case H5T_FLOAT: return "float" + std::to_string(bits) + " (non-standard layout)";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    default: return "unsupported type";
  }
}

// File access: keep HDF5's file locking but ignore file systems that do not support it (Lustre
// and NFS mounts without flock make 1.10's locking fail every open otherwise).
PropList file_access(const std::string& path, H5F_close_degree_t degree) {
  PropList fapl = make_plist(H5P_FILE_ACCESS, path);
  check(H5Pset_file_locking(fapl.id(), true, true), path, "H5Pset_file_locking");
  check(H5Pset_fclose_degree(fapl.id(), degree), path, "H5Pset_fclose_degree");
  return fapl;
}

bool is_row_selection_valid(const std::vector<int64_t>& dims, int64_t first, int64_t count) {
  return !dims.empty() && first >= 0 && count >= 0 && first + count <= dims[0];
}

int64_t row_size(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

int64_t element_count(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// File and memory dataspaces for rows [first, first+count) (or the whole dataset when whole).
struct Selection {
  Dataspace file, memory;
  hid_t file_id() const { return file.valid() ? file.id() : H5S_ALL; }
  hid_t memory_id() const { return memory.valid() ? memory.id() : H5S_ALL; }
};

Selection select_rows(const Dataset& ds, const std::vector<int64_t>& dims, int64_t first, int64_t count, bool whole) {
  Selection sel;
  if (whole) return sel;
  const std::string& where = ds.where();
  sel.file = Dataspace(check_read(H5Dget_space(ds.id()), where, "H5Dget_space"));
  std::vector<hsize_t> start(dims.size(), 0), extent = to_hsize(dims);
  start[0] = hsize_t(first);
  extent[0] = hsize_t(count);
  check(H5Sselect_hyperslab(sel.file.id(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr), where,
        "select " + rows_text(first, count));
  sel.memory = Dataspace(check(H5Screate_simple(int(extent.size()), extent.data(), nullptr), where, "H5Screate_simple"));
  return sel;
}

// Is this dataset's type one of our little-endian 16-bit floats (read and written as raw bits)?
bool is_raw16(hid_t file_type_id, Type* type) {
  return classify(file_type_id, type) && (*type == Type::Float16 || *type == Type::BFloat16) &&
         H5Tget_order(file_type_id) == H5T_ORDER_LE;
}

// Moves rows [first, first+count) between `buf` and the dataset (or all of it when whole).
template <class T>
void transfer(const Dataset& ds, bool writing, int64_t first, int64_t count, T* buf, bool whole) {
  const std::vector<int64_t> dims = ds.dims();
  if (whole) {
    first = 0;
    count = dims.empty() ? 1 : dims[0];
  } else if (!is_row_selection_valid(dims, first, count)) {
    internal_error(ds.where() + ": " + rows_text(first, count) + " out of range (" +
                   std::to_string(dims.empty() ? 0 : dims[0]) + " rows)");
  }
  const int64_t n = whole ? element_count(dims) : count * row_size(dims);
  if (n == 0) return;
  Selection sel = select_rows(ds, dims, first, count, whole);
  const std::string where = ds.where();

  Datatype stored(check_read(H5Dget_type(ds.id()), where, "H5Dget_type"));
  Type type16;
  if constexpr (std::is_same_v<T, float>) {
    // 16-bit floats: HDF5's soft conversion is exact but ~100x slower than widening the bits
    // here (HDF5 1.10.8: ~37 ns vs ~0.3 ns per element), so move raw bits and convert ourselves.
    if (is_raw16(stored.id(), &type16)) {
      std::vector<uint16_t> bits(size_t(n), 0);
      Datatype raw = file_type(type16);
      if (writing) {
        for (int64_t i = 0; i < n; ++i) {
          bits[i] = type16 == Type::Float16 ? float_to_f16(buf[i]) : float_to_bf16(buf[i]);
          const float back = type16 == Type::Float16 ? f16_to_float(bits[i]) : bf16_to_float(bits[i]);
          if (std::isfinite(buf[i]) && !std::isfinite(back))
            user_error(where + ": value " + std::to_string(buf[i]) + " at " +
                       rows_text(first + i / std::max<int64_t>(1, row_size(dims)), 1) + " overflows " +
                       to_string(type16) + (type16 == Type::Float16 ? "; store as float32 or bfloat16" : "; store as float32"));
        }
        check(H5Dwrite(ds.id(), raw.id(), sel.memory_id(), sel.file_id(), H5P_DEFAULT, bits.data()), where,
              "write " + rows_text(first, count));
      } else {
        if (H5Dread(ds.id(), raw.id(), sel.memory_id(), sel.file_id(), H5P_DEFAULT, bits.data()) < 0)
          corrupt_error(where + ": read failed (checksum mismatch or corrupt data) at " + rows_text(first, count) +
                        hdf5_reason());
        if (type16 == Type::Float16) {
          for (int64_t i = 0; i < n; ++i) buf[i] = f16_to_float(bits[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) buf[i] = bf16_to_float(bits[i]);
        }
      }
      return;
    }
  }
  if (writing) {
    check(H5Dwrite(ds.id(), memory_type<T>(), sel.memory_id(), sel.file_id(), H5P_DEFAULT, buf), where,
          "write " + rows_text(first, count));
  } else if (H5Dread(ds.id(), memory_type<T>(), sel.memory_id(), sel.file_id(), H5P_DEFAULT, buf) < 0) {
    corrupt_error(where + ": read failed (checksum mismatch or corrupt data) at " + rows_text(first, count) +
                  hdf5_reason());
  }
}

}  // namespace

void silence_errors() {
  // No library shutdown at exit: every handle of ours is closed by RAII, and after a failed
  // close (disk full) HDF5's own atexit clean-up can crash on the half-closed file, turning a
  // clean one-line error into a segfault. Only effective before the library's first use.
  H5dont_atexit();
  SAE_H5_CHECK(H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr));
}

// ---- types ----

std::string to_string(Type type) {
  switch (type) {
    case Type::Float32: return "float32";
    case Type::Float64: return "float64";
    case Type::Float16: return "float16";
    case Type::BFloat16: return "bfloat16";
    case Type::Int32: return "int32";
    case Type::Int64: return "int64";
    case Type::UInt8: return "uint8";
  }
  return "unknown";
}

int64_t type_size(Type type) {
  switch (type) {
    case Type::Float64:
    case Type::Int64: return 8;
    case Type::Float32:
    case Type::Int32: return 4;
    case Type::Float16:
    case Type::BFloat16: return 2;
    case Type::UInt8: return 1;
  }
  return 0;
}

Datatype file_type(Type type) {
  switch (type) {
    case Type::Float32: return Datatype(SAE_H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)));
    case Type::Float64: return Datatype(SAE_H5_CHECK(H5Tcopy(H5T_IEEE_F64LE)));
    case Type::Int32: return Datatype(SAE_H5_CHECK(H5Tcopy(H5T_STD_I32LE)));
    case Type::Int64: return Datatype(SAE_H5_CHECK(H5Tcopy(H5T_STD_I64LE)));
    case Type::UInt8: return Datatype(SAE_H5_CHECK(H5Tcopy(H5T_STD_U8LE)));
    case Type::Float16:
    case Type::BFloat16: {
      // Built from f32: fields first (they must fit the precision), then shrink to 16 bits.
      const FloatFields& f = type == Type::Float16 ? kF16 : kBF16;
      Datatype t(SAE_H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)));
      SAE_H5_CHECK(H5Tset_fields(t.id(), f.spos, f.epos, f.esize, f.mpos, f.msize));
      SAE_H5_CHECK(H5Tset_offset(t.id(), 0));
      SAE_H5_CHECK(H5Tset_precision(t.id(), 16));
      SAE_H5_CHECK(H5Tset_size(t.id(), 2));
      SAE_H5_CHECK(H5Tset_ebias(t.id(), f.ebias));
      return t;
    }
  }
  internal_error("h5::file_type: unknown type");
}

// ---- objects (attributes: h5_attributes.cpp) ----

Object::Object(hid_t id, CloseFn close, std::string file, std::string name)
    : id_(id), close_(close), file_(std::move(file)), name_(std::move(name)) {}

Object::Object(Object&& other) noexcept
    : id_(std::exchange(other.id_, H5I_INVALID_HID)), close_(other.close_), file_(std::move(other.file_)),
      name_(std::move(other.name_)) {}

Object& Object::operator=(Object&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = std::exchange(other.id_, H5I_INVALID_HID);
    close_ = other.close_;
    file_ = std::move(other.file_);
    name_ = std::move(other.name_);
  }
  return *this;
}

Object::~Object() { reset(); }

void Object::reset() {
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = H5I_INVALID_HID;
}

std::string Object::where() const { return name_ == "/" ? file_ : file_ + ": " + name_; }

// ---- files and groups ----

File create_file(const std::string& path) {
  PropList fapl = file_access(path, H5F_CLOSE_SEMI);
  errno = 0;
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id());
  if (id < 0) {
    const int err = errno;  // the POSIX driver's open() or write(), when that was the cause
    const std::string message = path + ": cannot create HDF5 file" + hdf5_reason();
    if (is_system_output_errno(err)) internal_error(message);  // a full disk: exit 1
    user_error(message);
  }
  return File(id, H5Fclose, path, "/");
}

File open_file(const std::string& path, bool writable) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) user_error(path + ": no such file");
  PropList fapl = file_access(path, writable ? H5F_CLOSE_SEMI : H5F_CLOSE_WEAK);
  const hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.id());
  if (id < 0) user_error(path + ": not an HDF5 file or not readable" + hdf5_reason());
  return File(id, H5Fclose, path, "/");
}

void File::flush() const { check(H5Fflush(id_, H5F_SCOPE_LOCAL), where(), "flush"); }

void File::close() {
  if (id_ < 0) return;
  const hid_t id = std::exchange(id_, H5I_INVALID_HID);
  if (H5Fclose(id) < 0) {
    const std::string reason = hdf5_reason();
    internal_error(file_ + ": close failed" + (reason.empty() ? " (objects still open?)" : reason));
  }
}

bool Location::exists(const std::string& path) const {
  std::string prefix;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty()) {
      prefix += prefix.empty() ? part : "/" + part;
      if (check_read(H5Lexists(id_, prefix.c_str(), H5P_DEFAULT), where(), "H5Lexists '" + prefix + "'") <= 0)
        return false;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

Group Location::create_group(const std::string& name) const {
  const std::string path = join_path(name_, name);
  PropList lcpl = make_plist(H5P_LINK_CREATE, where());
  check(H5Pset_create_intermediate_group(lcpl.id(), 1), where(), "H5Pset_create_intermediate_group");
  const hid_t id = check(H5Gcreate2(id_, name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), file_ + ": " + path,
                         "create group");
  return Group(id, H5Gclose, file_, path);
}

Group Location::open_group(const std::string& name) const {
  const std::string path = join_path(name_, name);
  if (!exists(name)) user_error(file_ + ": " + path + ": no such group");
  const hid_t id = H5Gopen2(id_, name.c_str(), H5P_DEFAULT);
  if (id < 0) user_error(file_ + ": " + path + ": not a group or unreadable" + hdf5_reason());
  return Group(id, H5Gclose, file_, path);
}

std::vector<int64_t> row_chunk(const std::vector<int64_t>& dims, Type type, int64_t target_bytes) {
  if (dims.empty()) return {};
  const int64_t row_bytes = std::max<int64_t>(1, row_size(dims) * type_size(type));
  std::vector<int64_t> chunk = dims;
  chunk[0] = std::clamp<int64_t>(target_bytes / row_bytes, 1, std::max<int64_t>(1, dims[0]));
  return chunk;
}

Dataset Location::create_dataset(const std::string& name, Type type, const std::vector<int64_t>& dims,
                                 const DatasetOptions& options) const {
  const std::string path = join_path(name_, name), at = file_ + ": " + path;
  Dataspace space;
  if (dims.empty()) {
    space = Dataspace(check(H5Screate(H5S_SCALAR), at, "H5Screate"));
  } else {
    const std::vector<hsize_t> hd = to_hsize(dims);
    space = Dataspace(check(H5Screate_simple(int(hd.size()), hd.data(), nullptr), at, "H5Screate_simple"));
  }
  PropList dcpl = make_plist(H5P_DATASET_CREATE, at);
  const bool empty = std::any_of(dims.begin(), dims.end(), [](int64_t d) { return d == 0; });
  if (!dims.empty() && !empty) {  // chunks need a non-empty extent; a scalar or empty set is contiguous
    std::vector<int64_t> chunk = options.chunk.empty() ? row_chunk(dims, type) : options.chunk;
    if (chunk.size() != dims.size()) internal_error(at + ": chunk rank differs from dataset rank");
    for (size_t i = 0; i < dims.size(); ++i) chunk[i] = std::clamp<int64_t>(chunk[i], 1, dims[i]);
    const std::vector<hsize_t> hc = to_hsize(chunk);
    check(H5Pset_chunk(dcpl.id(), int(hc.size()), hc.data()), at, "H5Pset_chunk");
    if (options.fletcher32) check(H5Pset_fletcher32(dcpl.id()), at, "H5Pset_fletcher32");
  }
  PropList lcpl = make_plist(H5P_LINK_CREATE, at);
  check(H5Pset_create_intermediate_group(lcpl.id(), 1), at, "H5Pset_create_intermediate_group");
  Datatype t = file_type(type);
  const hid_t id = check(H5Dcreate2(id_, name.c_str(), t.id(), space.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT), at,
                         "create dataset");
  return Dataset(id, H5Dclose, file_, path);
}

Dataset Location::create_virtual_dataset(const std::string& name, Type type, const std::vector<int64_t>& dims,
                                         const std::vector<VirtualSource>& sources) const {
  const std::string path = join_path(name_, name), at = file_ + ": " + path;
  if (dims.empty()) internal_error(at + ": a virtual dataset needs at least one dimension");
  const std::vector<hsize_t> hd = to_hsize(dims);
  Dataspace vspace(check(H5Screate_simple(int(hd.size()), hd.data(), nullptr), at, "H5Screate_simple"));
  PropList dcpl = make_plist(H5P_DATASET_CREATE, at);
  for (const VirtualSource& src : sources) {
    if (src.n_rows <= 0) continue;
    if (!is_row_selection_valid(dims, src.first_row, src.n_rows))
      internal_error(at + ": source " + src.file + " maps to " + rows_text(src.first_row, src.n_rows) +
                     ", outside " + std::to_string(dims[0]) + " rows");
    std::vector<hsize_t> start(hd.size(), 0), extent = hd;
    start[0] = hsize_t(src.first_row);
    extent[0] = hsize_t(src.n_rows);
    Dataspace src_space(check(H5Screate_simple(int(extent.size()), extent.data(), nullptr), at, "H5Screate_simple"));
    check(H5Sselect_hyperslab(vspace.id(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr), at,
          "select " + rows_text(src.first_row, src.n_rows));
    check(H5Pset_virtual(dcpl.id(), vspace.id(), src.file.c_str(), src.dataset.c_str(), src_space.id()), at,
          "map " + src.file + ":" + src.dataset);
  }
  check(H5Sselect_all(vspace.id()), at, "H5Sselect_all");
  PropList lcpl = make_plist(H5P_LINK_CREATE, at);
  check(H5Pset_create_intermediate_group(lcpl.id(), 1), at, "H5Pset_create_intermediate_group");
  Datatype t = file_type(type);
  // Rows whose source file is missing read as this fill value: NaN for floats and -1 for
  // integers, so a lost shard shows up as unusable data rather than plausible zeros.
  const uint64_t fill = type == Type::Float32    ? 0x7FC00000u
                        : type == Type::Float64  ? 0x7FF8000000000000u
                        : type == Type::Float16  ? 0x7E00u
                        : type == Type::BFloat16 ? 0x7FC0u
                        : type == Type::UInt8    ? 0xFFu
                                                 : ~uint64_t(0);  // -1 in two's complement at any width
  check(H5Pset_fill_value(dcpl.id(), t.id(), &fill), at, "H5Pset_fill_value");
  const hid_t id = check(H5Dcreate2(id_, name.c_str(), t.id(), vspace.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT), at,
                         "create virtual dataset");
  return Dataset(id, H5Dclose, file_, path);
}

Dataset Location::open_dataset(const std::string& name, int64_t chunk_cache_bytes) const {
  const std::string path = join_path(name_, name), at = file_ + ": " + path;
  if (!exists(name)) user_error(at + ": no such dataset");
  PropList dapl = make_plist(H5P_DATASET_ACCESS, at);
  if (chunk_cache_bytes > 0)
    check(H5Pset_chunk_cache(dapl.id(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, size_t(chunk_cache_bytes),
                             H5D_CHUNK_CACHE_W0_DEFAULT),
          at, "H5Pset_chunk_cache");
  const hid_t id = H5Dopen2(id_, name.c_str(), dapl.id());
  if (id < 0) user_error(at + ": not a dataset or unreadable" + hdf5_reason());
  return Dataset(id, H5Dclose, file_, path);
}

std::vector<std::string> Location::list_datasets() const {
  H5G_info_t info;
  check_read(H5Gget_info(id_, &info), where(), "H5Gget_info");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = check_read(H5Lget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT),
                              where(), "H5Lget_name_by_idx");
    std::string link(size_t(len) + 1, '\0');
    check_read(H5Lget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, link.data(), link.size(), H5P_DEFAULT), where(),
          "H5Lget_name_by_idx");
    link.resize(size_t(len));
    // Opening tells the object's kind portably across HDF5 1.10/1.12/1.14; a link that does not
    // open (dangling soft or external link) is no dataset of ours.
    const hid_t obj = H5Oopen(id_, link.c_str(), H5P_DEFAULT);
    if (obj < 0) continue;
    const bool is_dataset = H5Iget_type(obj) == H5I_DATASET;
    check(H5Oclose(obj), where(), "H5Oclose '" + link + "'");
    if (is_dataset) names.push_back(link);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// ---- datasets ----

std::vector<int64_t> Dataset::dims() const {
  Dataspace space(check_read(H5Dget_space(id_), where(), "H5Dget_space"));
  const int rank = check_read(H5Sget_simple_extent_ndims(space.id()), where(), "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> hd(size_t(rank), 0);
  if (rank > 0) check_read(H5Sget_simple_extent_dims(space.id(), hd.data(), nullptr), where(), "H5Sget_simple_extent_dims");
  return std::vector<int64_t>(hd.begin(), hd.end());
}

int64_t Dataset::n_rows() const {
  const std::vector<int64_t> d = dims();
  return d.empty() ? 1 : d[0];
}

Type Dataset::type() const {
  Datatype t(check_read(H5Dget_type(id_), where(), "H5Dget_type"));
  Type out;
  if (!classify(t.id(), &out)) user_error(where() + ": unsupported element type " + describe_type(t.id()));
  return out;
}

std::string Dataset::type_name() const {
  Datatype t(check_read(H5Dget_type(id_), where(), "H5Dget_type"));
  return describe_type(t.id());
}

namespace {
H5D_layout_t layout_of(const Dataset& ds) {
  PropList dcpl(check_read(H5Dget_create_plist(ds.id()), ds.where(), "H5Dget_create_plist"));
  return check_read(H5Pget_layout(dcpl.id()), ds.where(), "H5Pget_layout");
}
}  // namespace

bool Dataset::is_chunked() const { return layout_of(*this) == H5D_CHUNKED; }
bool Dataset::is_virtual() const { return layout_of(*this) == H5D_VIRTUAL; }

bool Dataset::has_fletcher32() const {
  PropList dcpl(check_read(H5Dget_create_plist(id_), where(), "H5Dget_create_plist"));
  const int n = check_read(H5Pget_nfilters(dcpl.id()), where(), "H5Pget_nfilters");
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, config = 0;
    size_t n_values = 0;
    char filter_name[64];
    const H5Z_filter_t f = check_read(H5Pget_filter2(dcpl.id(), unsigned(i), &flags, &n_values, nullptr,
                                                sizeof filter_name, filter_name, &config),
                                 where(), "H5Pget_filter2");
    if (f == H5Z_FILTER_FLETCHER32) return true;
  }
  return false;
}

void Dataset::read_rows_raw(int64_t first, int64_t count, void* out) const {
  const std::vector<int64_t> dims = this->dims();
  if (!is_row_selection_valid(dims, first, count))
    internal_error(where() + ": " + rows_text(first, count) + " out of range (" +
                   std::to_string(dims.empty() ? 0 : dims[0]) + " rows)");
  if (count == 0 || row_size(dims) == 0) return;
  Selection sel = select_rows(*this, dims, first, count, false);
  Datatype memory = file_type(type());  // our types' little-endian layouts
  if (H5Dread(id_, memory.id(), sel.memory_id(), sel.file_id(), H5P_DEFAULT, out) < 0)
    corrupt_error(where() + ": read failed (checksum mismatch or corrupt data) at " + rows_text(first, count) +
                  hdf5_reason());
}

template <class T> void Dataset::write(const T* data) const { transfer(*this, true, 0, 0, const_cast<T*>(data), true); }
template <class T> void Dataset::read(T* out) const { transfer(*this, false, 0, 0, out, true); }
template <class T> std::vector<T> Dataset::read_all() const {
  std::vector<T> out(size_t(element_count(dims())));
  read(out.data());
  return out;
}
template <class T> void Dataset::write_rows(int64_t first, int64_t count, const T* data) const {
  transfer(*this, true, first, count, const_cast<T*>(data), false);
}
template <class T> void Dataset::read_rows(int64_t first, int64_t count, T* out) const {
  transfer(*this, false, first, count, out, false);
}

#define SAE_H5_INSTANTIATE(T)                                                    \
  template void Dataset::write<T>(const T*) const;                               \
  template void Dataset::read<T>(T*) const;                                      \
  template std::vector<T> Dataset::read_all<T>() const;                          \
  template void Dataset::write_rows<T>(int64_t, int64_t, const T*) const;        \
  template void Dataset::read_rows<T>(int64_t, int64_t, T*) const;
SAE_H5_INSTANTIATE(float)
SAE_H5_INSTANTIATE(double)
SAE_H5_INSTANTIATE(int32_t)
SAE_H5_INSTANTIATE(int64_t)
SAE_H5_INSTANTIATE(uint8_t)
#undef SAE_H5_INSTANTIATE

}  // namespace saepipe::h5
