// GGUF files (llama.cpp's model format, versions 2 and 3), memory-mapped. Little-endian:
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
//   kv_count × {string key, u32 value_type, value},
//   tensor_count × {string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset},
//   padding to `general.alignment` (u32, default 32), then the data section; each tensor's
//   offset is relative to it and a multiple of the alignment.
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
// ne[0] is the fastest-varying dimension: a PyTorch weight [out, in] is stored as ne = {in, out}.
//
// Every count, length, offset and size is checked against the file when it is opened: a bad file
// is a user error (exit 2) naming the file and what is wrong. Big-endian GGUF is refused.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace saepipe {

// gguf_type: the metadata value types.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value: a scalar, or an array of scalars, strings or arrays.
struct GgufValue {
  GgufType type = GgufType::U8;     // Array for arrays
  GgufType element = GgufType::U8;  // arrays: the elements' type
  uint64_t count = 1;               // arrays: number of elements; scalars: 1
  const unsigned char* data = nullptr;  // numbers and bools (scalar or array): their bytes in the file
  std::vector<std::string> strings;     // a string (one) or an array of strings
  std::vector<GgufValue> items;         // an array of arrays

  bool is_array() const { return type == GgufType::Array; }
  // The type of the numbers: `type` for a scalar, `element` for an array.
  GgufType scalar_type() const { return is_array() ? element : type; }
  bool is_integer() const;  // integer or bool scalars / elements
  bool is_float() const;    // F32 / F64 scalars / elements
  // Element i (0 for a scalar) as int64 (integer types; u64 above INT64_MAX is refused by the
  // typed getters of GgufFile) or as double (any number).
  int64_t integer_at(uint64_t i) const;
  uint64_t unsigned_at(uint64_t i) const;
  double number_at(uint64_t i) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;   // GGUF order: ne[0] fastest
  uint32_t type = 0;         // ggml type id (ggml_types.hpp)
  uint64_t offset = 0;       // relative to the data section, as stored
  int64_t file_offset = 0;   // absolute offset in the file
  int64_t n_bytes = 0;
  int64_t n_elements() const;
  // Row-major (PyTorch) shape: ne reversed.
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) = delete;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  int64_t data_offset() const { return data_offset_; }
  int64_t file_size() const { return size_; }

  // Metadata in file order, and by key.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: a missing key or a value of the wrong kind is a user error naming the file and
  // the key. Integers accept any integer type whose value fits; floats accept F32 and F64.
  int64_t get_int(const std::string& key) const;
  std::optional<int64_t> get_int_opt(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::optional<double> get_float_opt(const std::string& key) const;
  std::optional<bool> get_bool_opt(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::optional<std::string> get_string_opt(const std::string& key) const;
  // Arrays: strings, and integers (any integer element type, each checked to fit int64).
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;

  // Tensors in file order, and by name.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The raw bytes of a tensor (n_bytes of them).
  const unsigned char* tensor_data(const GgufTensorInfo& t) const { return map_ + t.file_offset; }
  // Dequantizes tensor `t` to float32 into out[n_elements]; user error for a type that cannot be
  // read (ggml_types.hpp lists those that can).
  void read_f32(const GgufTensorInfo& t, float* out) const;
  // Tensor `name` as float32, checked to have the row-major `shape`; user error naming the file
  // and tensor when it is missing or has another shape.
  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const;
  // A short text identifying the file's content (name, size, a hash of the header and metadata):
  // part of an activation store's fingerprint.
  std::string identity() const;

 private:
  std::string path_;
  const unsigned char* map_ = nullptr;
  int64_t size_ = 0, data_offset_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace saepipe
