// A small RAII layer over the HDF5 C API (in the spirit of HighFive, which Debian 12 does not
// package). Handles are move-only and close themselves with the matching H5?close; every call is
// checked and a failure becomes a one-line error naming the file and the object.
//
// Errors: a file that is missing or not HDF5, a missing object or attribute, or an attribute of
// the wrong kind is a user error (exit 2); a failed data read (how a Fletcher32 checksum mismatch
// shows) or a failed read of the file's structure (links, shapes, types, attributes: a damaged
// file) is a corrupt error (exit 3); any other failed call is an internal error (exit 1).
//
// Shapes: datasets are row-major; a "row" is one index of the first dimension, i.e.
// product(dims[1:]) elements (1 element for a 1-D dataset).
//
// Thread safety: Debian's parallel HDF5 is built without thread safety, so all HDF5 calls of a
// process must come from one thread at a time.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/core/float16.hpp"

namespace saepipe::h5 {

// Turns off HDF5's automatic error-stack printing (stages call it once at start): our errors
// already carry one line naming the file and the object, plus HDF5's innermost reason.
void silence_errors();

// Owns one HDF5 identifier and closes it with `Close`. Move-only. The destructor ignores close
// errors (it may run during unwinding); call close() where a failure must be seen.
template <herr_t (*Close)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using PropList = Handle<H5Pclose>;
using Attribute = Handle<H5Aclose>;

// Element types saepipe stores. Float16 and BFloat16 are HDF5 float types (little-endian) that
// h5py and the HDF5 library convert correctly: f16 = IEEE half; bf16 = the top half of an f32.
enum class Type { Float32, Float64, Float16, BFloat16, Int32, Int64, UInt8 };

std::string to_string(Type type);  // "float32", "float64", "float16", "bfloat16", "int32", ...
int64_t type_size(Type type);      // bytes per element
Datatype file_type(Type type);     // a fresh copy of the on-disk type

// 16-bit conversions (float_to_bf16, bf16_to_float, float_to_f16, f16_to_float):
// pipeline/core/float16.hpp.

class Dataset;
class Group;

// A file, group or dataset: owns its identifier, knows its file and path for messages, and
// holds attributes.
class Object {
 public:
  Object(Object&&) noexcept;
  Object& operator=(Object&&) noexcept;
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  virtual ~Object();

  // Takes ownership of an open identifier, closed with `close`; file and name are for messages.
  using CloseFn = herr_t (*)(hid_t);
  Object(hid_t id, CloseFn close, std::string file, std::string name);

  hid_t id() const { return id_; }
  const std::string& file_path() const { return file_; }
  const std::string& name() const { return name_; }  // "/" for a file, "/activations/x" ...
  std::string where() const;                         // "file.h5: /activations/x" (file: "file.h5")
  // Closes now, ignoring errors (the destructor does the same).
  void reset();
  // Forgets the identifier without closing it: a rank failing alone inside parallel HDF5 must
  // not make the collective close call the others would never join (it aborts instead).
  void release() { id_ = H5I_INVALID_HID; }

  enum class AttributeKind { String, Integer, Float, Other };
  bool has_attribute(const std::string& name) const;
  std::vector<std::string> attribute_names() const;
  AttributeKind attribute_kind(const std::string& name) const;
  int64_t attribute_size(const std::string& name) const;  // elements (1 for a scalar)

  // Writing replaces an attribute of the same name. Strings are variable-length UTF-8, integers
  // little-endian int64, floats little-endian float64.
  void write_string_attribute(const std::string& name, const std::string& value) const;
  void write_int_attribute(const std::string& name, int64_t value) const;
  void write_double_attribute(const std::string& name, double value) const;
  void write_int_vector_attribute(const std::string& name, const std::vector<int64_t>& values) const;
  void write_double_vector_attribute(const std::string& name, const std::vector<double>& values) const;

  // Reading names the object and attribute when it is missing or of another kind; strings may be
  // fixed or variable length, numbers are converted by HDF5.
  std::string read_string_attribute(const std::string& name) const;
  int64_t read_int_attribute(const std::string& name) const;
  double read_double_attribute(const std::string& name) const;
  std::vector<int64_t> read_int_vector_attribute(const std::string& name) const;
  std::vector<double> read_double_vector_attribute(const std::string& name) const;

 protected:
  hid_t id_ = H5I_INVALID_HID;
  CloseFn close_ = nullptr;
  std::string file_, name_;
};

// Options of a new dataset. An empty chunk means row_chunk(dims, type) (~1 MiB of rows).
struct DatasetOptions {
  std::vector<int64_t> chunk;
  bool fletcher32 = true;  // per-chunk checksum, verified on every read
};

// One source of a virtual dataset: all rows of `dataset` in `file` (a path relative to the
// virtual file's directory, so the set can be moved) map to rows [first_row, first_row+n_rows).
struct VirtualSource {
  std::string file, dataset;
  int64_t first_row = 0, n_rows = 0;
};

// A file or group: holds groups and datasets.
class Location : public Object {
 public:
  using Object::Object;
  // True when every component of the relative path exists.
  bool exists(const std::string& path) const;
  Group create_group(const std::string& name) const;
  Group open_group(const std::string& name) const;
  // Intermediate groups are created. Chunked (with Fletcher32 by default) unless a dimension is 0.
  Dataset create_dataset(const std::string& name, Type type, const std::vector<int64_t>& dims,
                         const DatasetOptions& options = {}) const;
  Dataset create_virtual_dataset(const std::string& name, Type type, const std::vector<int64_t>& dims,
                                 const std::vector<VirtualSource>& sources) const;
  // chunk_cache_bytes > 0 sets this dataset's raw-chunk cache (HDF5's default is 1 MiB).
  Dataset open_dataset(const std::string& name, int64_t chunk_cache_bytes = 0) const;
  // Names of the datasets directly in this group, sorted.
  std::vector<std::string> list_datasets() const;
};

class Group : public Location {
 public:
  using Location::Location;
};

class File : public Location {
 public:
  using Location::Location;
  void flush() const;
  // Closes now and reports failure (the destructor closes quietly). Created files refuse to
  // close while objects in them are still open, so nothing is left unflushed behind our back.
  void close();
};

// Creates (truncating) a file; user error naming it if that fails (missing directory, permissions).
File create_file(const std::string& path);
// Opens an existing file; user error "<path>: no such file" / "<path>: not an HDF5 file ...".
File open_file(const std::string& path, bool writable = false);

// Rows per chunk so one chunk holds about target_bytes (at least 1 row, at most dims[0]).
std::vector<int64_t> row_chunk(const std::vector<int64_t>& dims, Type type, int64_t target_bytes = 1 << 20);

class Dataset : public Object {
 public:
  using Object::Object;
  std::vector<int64_t> dims() const;
  int64_t n_rows() const;  // dims()[0] (1 for a scalar)
  // The element type; user error naming the dataset when it is none of Type.
  Type type() const;
  // A name for messages and layout checks, also for types outside Type ("string", "int16", ...).
  std::string type_name() const;
  bool is_chunked() const;
  bool has_fletcher32() const;
  bool is_virtual() const;

  // T is float, double, int32_t, int64_t or uint8_t. Floats written to a float16/bfloat16
  // dataset are rounded in our code (a finite value that would overflow is a user error); floats
  // read from one are widened exactly. Other conversions are HDF5's.
  template <class T> void write(const T* data) const;
  template <class T> void read(T* out) const;
  template <class T> std::vector<T> read_all() const;
  // Rows [first, first + count); `data` holds count * row_size elements.
  template <class T> void write_rows(int64_t first, int64_t count, const T* data) const;
  template <class T> void read_rows(int64_t first, int64_t count, T* out) const;
  // Rows [first, first + count) in type()'s own little-endian layout (16-bit floats as their
  // bits), whatever byte order the file holds; a failed read is a corrupt error.
  void read_rows_raw(int64_t first, int64_t count, void* out) const;

  // Whole chunks as stored, filters applied (h5_chunks.cpp): what the activation store reads
  // and writes with its own checksums and conversions. A chunk is named by its first row, a
  // multiple of chunk_dims()[0]; the other dimensions must be whole (one chunk across).
  std::vector<int64_t> chunk_dims() const;  // empty when not chunked
  std::vector<int> filters() const;         // the filter pipeline's ids in order (H5Z_FILTER_*)
  bool stored_little_endian() const;        // the element type's byte order in the file
  struct ChunkInfo {
    int64_t bytes = 0;         // as stored; 0 when never written (it reads as the fill value)
    uint32_t filter_mask = 0;  // bit i set: filter i was skipped for this chunk
  };
  ChunkInfo chunk_info(int64_t first_row) const;
  // Reads the chunk's stored bytes (chunk_info(first_row).bytes of them) into buf; returns the
  // filter mask. Failure: corrupt error.
  uint32_t read_chunk(int64_t first_row, void* buf) const;
  // Stores `bytes` as the chunk at first_row, filters already applied (mask as above).
  void write_chunk(int64_t first_row, const void* buf, int64_t bytes, uint32_t filter_mask = 0) const;
};

}  // namespace saepipe::h5
