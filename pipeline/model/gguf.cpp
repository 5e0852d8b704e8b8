#include "pipeline/model/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "pipeline/core/errors.hpp"
#include "pipeline/model/ggml_types.hpp"

namespace saepipe {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr int kMaxDims = 4;         // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;   // arrays of arrays: deeper nesting is not a real model file
constexpr int64_t kMaxDim = int64_t(1) << 48;

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;  // String, Array
  }
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Reads the header and metadata sequentially; every read is checked against the end of the file.
class Cursor {
 public:
  Cursor(const std::string& path, const unsigned char* p, int64_t size) : path_(path), p_(p), size_(size) {}
  int64_t pos() const { return pos_; }
  int64_t left() const { return size_ - pos_; }
  const unsigned char* here() const { return p_ + pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > uint64_t(left()))
      user_error(path_ + ": truncated GGUF file: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                 std::to_string(pos_) + ", " + std::to_string(left()) + " left");
  }
  const unsigned char* take(uint64_t n, const std::string& what) {
    need(n, what);
    const unsigned char* at = here();
    pos_ += int64_t(n);
    return at;
  }
  uint32_t u32(const std::string& what) {
    uint32_t v;
    std::memcpy(&v, take(4, what), 4);
    return v;
  }
  uint64_t u64(const std::string& what) {
    uint64_t v;
    std::memcpy(&v, take(8, what), 8);
    return v;
  }
  std::string string(const std::string& what) {
    const uint64_t n = u64(what + " (its length)");
    const unsigned char* s = take(n, what);
    return std::string(reinterpret_cast<const char*>(s), size_t(n));
  }

 private:
  const std::string& path_;
  const unsigned char* p_;
  int64_t size_, pos_ = 0;
};

GgufType value_type(Cursor& c, const std::string& path, const std::string& what) {
  const uint32_t t = c.u32(what + " type");
  if (t > uint32_t(GgufType::F64))
    user_error(path + ": " + what + " has unknown value type " + std::to_string(t) + " (GGUF defines 0-12)");
  return GgufType(t);
}

GgufValue read_value(Cursor& c, const std::string& path, GgufType type, const std::string& what, int depth) {
  GgufValue v;
  v.type = type;
  if (const size_t s = scalar_size(type)) {
    v.data = c.take(s, what);
  } else if (type == GgufType::String) {
    v.strings.push_back(c.string(what));
  } else {  // Array
    if (depth >= kMaxArrayDepth)
      user_error(path + ": " + what + " nests arrays deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    v.element = value_type(c, path, what + " element");
    v.count = c.u64(what + " element count");
    const std::string n = std::to_string(v.count);
    // Each element takes at least this many bytes: a count the rest of the file cannot hold is
    // refused before anything is allocated for it.
    const uint64_t least = scalar_size(v.element) ? scalar_size(v.element)
                           : v.element == GgufType::String ? 8 : 12;
    if (v.count > uint64_t(c.left()) / least)
      user_error(path + ": truncated GGUF file: " + what + " claims " + n + " elements of " +
                 gguf_type_name(v.element) + ", more than the " + std::to_string(c.left()) + " bytes left hold");
    if (scalar_size(v.element)) {
      v.data = c.take(v.count * scalar_size(v.element), what);
    } else if (v.element == GgufType::String) {
      v.strings.reserve(size_t(v.count));
      for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.string(what + "[" + std::to_string(i) + "]"));
    } else {
      v.items.reserve(size_t(v.count));
      for (uint64_t i = 0; i < v.count; ++i)
        v.items.push_back(read_value(c, path, GgufType::Array, what + "[" + std::to_string(i) + "]", depth + 1));
    }
  }
  return v;
}

// FNV-1a: the same on every machine and build.
uint64_t fnv1a(const unsigned char* p, int64_t n) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = uint32_t(t);
  return i < 13 ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (scalar_type()) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: case GgufType::Bool: return true;
    default: return false;
  }
}

bool GgufValue::is_float() const { return scalar_type() == GgufType::F32 || scalar_type() == GgufType::F64; }

namespace {
template <class T>
T load_at(const unsigned char* data, uint64_t i) {
  T v;
  std::memcpy(&v, data + i * sizeof(T), sizeof(T));
  return v;
}
}  // namespace

uint64_t GgufValue::unsigned_at(uint64_t i) const {
  SAE_ASSERT(is_integer() && i < count && data, "GgufValue::unsigned_at on a non-integer or past the end");
  switch (scalar_type()) {
    case GgufType::U8: return load_at<uint8_t>(data, i);
    case GgufType::Bool: return load_at<uint8_t>(data, i) != 0;
    case GgufType::U16: return load_at<uint16_t>(data, i);
    case GgufType::U32: return load_at<uint32_t>(data, i);
    case GgufType::U64: return load_at<uint64_t>(data, i);
    default: return uint64_t(integer_at(i));
  }
}

int64_t GgufValue::integer_at(uint64_t i) const {
  SAE_ASSERT(is_integer() && i < count && data, "GgufValue::integer_at on a non-integer or past the end");
  switch (scalar_type()) {
    case GgufType::I8: return load_at<int8_t>(data, i);
    case GgufType::I16: return load_at<int16_t>(data, i);
    case GgufType::I32: return load_at<int32_t>(data, i);
    case GgufType::I64: return load_at<int64_t>(data, i);
    default: return int64_t(unsigned_at(i));  // callers check U64 values above INT64_MAX
  }
}

double GgufValue::number_at(uint64_t i) const {
  if (scalar_type() == GgufType::F32) {
    SAE_ASSERT(i < count && data, "GgufValue::number_at past the end");
    return load_at<float>(data, i);
  }
  if (scalar_type() == GgufType::F64) {
    SAE_ASSERT(i < count && data, "GgufValue::number_at past the end");
    return load_at<double>(data, i);
  }
  if (scalar_type() == GgufType::U64) return double(unsigned_at(i));
  return double(integer_at(i));
}

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return {ne.rbegin(), ne.rend()}; }

GgufFile::GgufFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) user_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    user_error(path + ": cannot stat (" + std::strerror(e) + ")");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    user_error(path + ": not a regular file (a .gguf model file is needed)");
  }
  size_ = int64_t(st.st_size);
  if (size_ < 24) {
    ::close(fd);
    user_error(path + ": truncated GGUF file (" + std::to_string(size_) + " bytes, shorter than the 24-byte header)");
  }
  void* m = ::mmap(nullptr, size_t(size_), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file
  if (m == MAP_FAILED) user_error(path + ": cannot map (" + std::strerror(map_errno) + ")");
  map_ = static_cast<const unsigned char*>(m);

  // From here on a failure must unmap.
  try {
    Cursor c(path_, map_, size_);
    const unsigned char* magic = c.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) {
      std::string shown;
      for (int i = 0; i < 4; ++i) shown += (magic[i] >= 0x20 && magic[i] < 0x7f) ? char(magic[i]) : '?';
      user_error(path_ + ": not a GGUF file (magic '" + shown + "', expected 'GGUF')");
    }
    version_ = c.u32("version");
    if ((version_ & 0xFFFFu) == 0 && version_ != 0)
      user_error(path_ + ": big-endian GGUF file (version field " + std::to_string(version_) +
                 "); only little-endian files are supported");
    if (version_ != 2 && version_ != 3)
      user_error(path_ + ": GGUF version " + std::to_string(version_) + " is not supported (versions 2 and 3 are)");
    const uint64_t n_tensors = c.u64("tensor count"), n_kv = c.u64("metadata count");
    // A key-value takes at least 13 bytes (key length, type, one byte), a tensor info 24.
    if (n_kv > uint64_t(c.left()) / 13)
      user_error(path_ + ": truncated GGUF file: the header claims " + std::to_string(n_kv) +
                 " metadata entries, more than the file holds");
    if (n_tensors > uint64_t(c.left()) / 24)
      user_error(path_ + ": truncated GGUF file: the header claims " + std::to_string(n_tensors) +
                 " tensors, more than the file holds");

    kv_.reserve(size_t(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key = c.string("metadata key " + std::to_string(i));
      if (key.empty()) user_error(path_ + ": metadata key " + std::to_string(i) + " is empty");
      if (kv_index_.count(key)) user_error(path_ + ": metadata key '" + key + "' appears twice");
      const std::string what = "metadata '" + key + "'";
      const GgufType type = value_type(c, path_, what);
      GgufValue v = read_value(c, path_, type, what, 0);
      kv_index_[key] = kv_.size();
      kv_.emplace_back(std::move(key), std::move(v));
    }
    if (const GgufValue* a = find("general.alignment")) {
      if (a->type != GgufType::U32)
        user_error(path_ + ": metadata 'general.alignment' has type " + gguf_type_name(a->type) + ", u32 expected");
      alignment_ = a->unsigned_at(0);
      if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
        user_error(path_ + ": general.alignment " + std::to_string(alignment_) + " is not a power of two");
    }

    tensors_.reserve(size_t(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      t.name = c.string("tensor " + std::to_string(i) + " name");
      const std::string where = path_ + ": tensor '" + t.name + "'";
      if (tensor_index_.count(t.name)) user_error(where + " appears twice");
      const uint32_t n_dims = c.u32("tensor '" + t.name + "' dimension count");
      if (n_dims > uint32_t(kMaxDims))
        user_error(where + " has " + std::to_string(n_dims) + " dimensions (at most " + std::to_string(kMaxDims) + ")");
      int64_t n = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t ne = c.u64("tensor '" + t.name + "' dimensions");
        if (ne > uint64_t(kMaxDim)) user_error(where + " has dimension " + std::to_string(ne) + ", too large");
        t.ne.push_back(int64_t(ne));
        if (ne != 0 && n > kMaxDim / int64_t(ne))
          user_error(where + " has shape ne=" + shape_text(t.ne) + ", too many elements");
        n *= int64_t(ne);
      }
      t.type = c.u32("tensor '" + t.name + "' type");
      const GgmlTypeInfo ti = ggml_type_info(t.type);
      if (!ti.name) user_error(where + " has unknown ggml type " + std::to_string(t.type));
      const int64_t row = t.ne.empty() ? 1 : t.ne[0];
      if (row % ti.block != 0)
        user_error(where + " of type " + ti.name + " has rows of " + std::to_string(row) +
                   " elements, not a multiple of its block of " + std::to_string(ti.block));
      t.n_bytes = n / ti.block * ti.bytes;  // n <= 2^48 and bytes <= 300: no overflow
      t.offset = c.u64("tensor '" + t.name + "' offset");
      tensor_index_[t.name] = tensors_.size();
      tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t pos = uint64_t(c.pos());
    const uint64_t start = (pos + alignment_ - 1) / alignment_ * alignment_;
    data_offset_ = int64_t(std::min<uint64_t>(start, uint64_t(size_)));
    if (!tensors_.empty() && start > uint64_t(size_))
      user_error(path_ + ": truncated GGUF file: the data section would start at offset " + std::to_string(start) +
                 ", past the end of the file (" + std::to_string(size_) + " bytes)");
    const uint64_t data_size = uint64_t(size_ - data_offset_);
    for (GgufTensorInfo& t : tensors_) {
      const std::string where = path_ + ": tensor '" + t.name + "'";
      if (t.offset % alignment_ != 0)
        user_error(where + " has offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
                   std::to_string(alignment_));
      if (t.offset > data_size || uint64_t(t.n_bytes) > data_size - t.offset)
        user_error(where + " (" + std::to_string(t.n_bytes) + " bytes at data offset " + std::to_string(t.offset) +
                   ") lies beyond the end of the file: the data section holds " + std::to_string(data_size) +
                   " bytes (truncated file?)");
      t.file_offset = data_offset_ + int64_t(t.offset);
    }
    // No two tensors may share bytes.
    std::vector<const GgufTensorInfo*> by_offset;
    for (const auto& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo &a = *by_offset[i - 1], &b = *by_offset[i];
      if (a.n_bytes > 0 && b.n_bytes > 0 && a.offset + uint64_t(a.n_bytes) > b.offset)
        user_error(path_ + ": tensors '" + a.name + "' and '" + b.name + "' overlap in the data section");
    }
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), size_t(size_));
    throw;
  }
}

GgufFile::~GgufFile() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_t(size_));
}

GgufFile::GgufFile(GgufFile&& o) noexcept
    : path_(std::move(o.path_)), map_(std::exchange(o.map_, nullptr)), size_(o.size_), data_offset_(o.data_offset_),
      version_(o.version_), alignment_(o.alignment_), kv_(std::move(o.kv_)), kv_index_(std::move(o.kv_index_)),
      tensors_(std::move(o.tensors_)), tensor_index_(std::move(o.tensor_index_)) {}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {
[[noreturn]] void wrong_kind(const std::string& path, const std::string& key, const GgufValue& v, const char* want) {
  std::string has = gguf_type_name(v.type);
  if (v.is_array()) has += " of " + std::string(gguf_type_name(v.element));
  user_error(path + ": metadata '" + key + "' has type " + has + ", " + want + " expected");
}

int64_t checked_integer(const std::string& path, const std::string& key, const GgufValue& v, uint64_t i) {
  if (v.scalar_type() == GgufType::U64 && v.unsigned_at(i) > uint64_t(std::numeric_limits<int64_t>::max()))
    user_error(path + ": metadata '" + key + "' holds " + std::to_string(v.unsigned_at(i)) + ", out of range");
  return v.integer_at(i);
}
}  // namespace

std::optional<int64_t> GgufFile::get_int_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_array() || !v->is_integer() || v->type == GgufType::Bool) wrong_kind(path_, key, *v, "an integer");
  return checked_integer(path_, key, *v, 0);
}

int64_t GgufFile::get_int(const std::string& key) const {
  auto v = get_int_opt(key);
  if (!v) user_error(path_ + ": metadata '" + key + "' is missing");
  return *v;
}

std::optional<double> GgufFile::get_float_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_array() || !v->is_float()) wrong_kind(path_, key, *v, "f32 or f64");
  return v->number_at(0);
}

double GgufFile::get_float(const std::string& key) const {
  auto v = get_float_opt(key);
  if (!v) user_error(path_ + ": metadata '" + key + "' is missing");
  return *v;
}

std::optional<bool> GgufFile::get_bool_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Bool) wrong_kind(path_, key, *v, "bool");
  return v->unsigned_at(0) != 0;
}

std::optional<std::string> GgufFile::get_string_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::String) wrong_kind(path_, key, *v, "string");
  return v->strings[0];
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) user_error(path_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufType::String) wrong_kind(path_, key, *v, "string");
  return v->strings[0];
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) user_error(path_ + ": metadata '" + key + "' is missing");
  if (!v->is_array() || v->element != GgufType::String) wrong_kind(path_, key, *v, "an array of strings");
  return v->strings;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) user_error(path_ + ": metadata '" + key + "' is missing");
  if (!v->is_array() || !v->is_integer()) wrong_kind(path_, key, *v, "an array of integers");
  std::vector<int64_t> out(size_t(v->count));
  for (uint64_t i = 0; i < v->count; ++i) out[i] = checked_integer(path_, key, *v, i);
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) user_error(path_ + ": metadata '" + key + "' is missing");
  if (!v->is_array() || !v->is_float()) wrong_kind(path_, key, *v, "an array of f32 or f64");
  std::vector<double> out(size_t(v->count));
  for (uint64_t i = 0; i < v->count; ++i) out[i] = v->number_at(i);
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::read_f32(const GgufTensorInfo& t, float* out) const {
  if (!ggml_type_info(t.type).dequantizable)
    user_error(path_ + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) +
               ", which cannot be read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
  dequantize_ggml(t.type, tensor_data(t), t.n_elements(), out);
}

std::vector<float> GgufFile::load(const std::string& name, const std::vector<int64_t>& shape) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) user_error(path_ + ": lacks tensor '" + name + "'");
  if (t->shape() != shape)
    user_error(path_ + ": tensor '" + name + "' has shape " + shape_text(t->shape()) + ", the model's metadata implies " +
               shape_text(shape));
  std::vector<float> out(size_t(t->n_elements()));
  read_f32(*t, out.data());
  return out;
}

std::string GgufFile::identity() const {
  return std::filesystem::path(path_).filename().string() + ":" + std::to_string(size_) + ":" +
         std::to_string(fnv1a(map_, data_offset_));
}

}  // namespace saepipe
