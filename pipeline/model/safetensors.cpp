#include "pipeline/model/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/core/float16.hpp"

namespace saepipe {

namespace {

using nlohmann::json;

// A header bigger than this is not a real checkpoint (the format caps it at 100 MB).
constexpr uint64_t kMaxHeader = 100u << 20;

int64_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "F64") return 8;
  return 0;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) user_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    user_error(path + ": cannot stat (" + std::strerror(errno) + ")");
  }
  size_ = int64_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    user_error(path + ": truncated safetensors file (" + std::to_string(size_) + " bytes, no header)");
  }
  void* m = ::mmap(nullptr, size_t(size_), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (m == MAP_FAILED) user_error(path + ": cannot map (" + std::strerror(errno) + ")");
  map_ = static_cast<const unsigned char*>(m);

  // From here on a failure must unmap.
  try {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | map_[i];
    if (n > kMaxHeader || int64_t(n) > size_ - 8)
      user_error(path + ": bad safetensors header length " + std::to_string(n) + " for a file of " +
                 std::to_string(size_) + " bytes (truncated or not a safetensors file)");
    data_offset_ = 8 + int64_t(n);
    json header;
    try {
      header = json::parse(map_ + 8, map_ + 8 + n);
    } catch (const json::exception& e) {
      user_error(path + ": safetensors header is not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!header.is_object()) user_error(path + ": safetensors header is not a JSON object");
    const int64_t data_size = size_ - data_offset_;
    for (auto& [name, t] : header.items()) {
      if (name == "__metadata__") continue;
      const std::string where = path + ": tensor " + name;
      if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
          !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
          t["data_offsets"].size() != 2)
        user_error(where + ": header entry needs dtype (string), shape (array) and data_offsets ([begin, end])");
      TensorInfo info;
      info.dtype = t["dtype"].get<std::string>();
      if (dtype_size(info.dtype) == 0)
        user_error(where + ": unsupported dtype " + info.dtype + " (supported: F32, F16, BF16, F64)");
      for (const auto& d : t["shape"]) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t(1) << 40))
          user_error(where + ": bad shape " + t["shape"].dump());
        info.shape.push_back(d.get<int64_t>());
      }
      for (const auto& o : t["data_offsets"])
        if (!o.is_number_unsigned()) user_error(where + ": bad data_offsets " + t["data_offsets"].dump());
      info.begin = t["data_offsets"][0].get<int64_t>();
      info.end = t["data_offsets"][1].get<int64_t>();
      if (info.begin > info.end || info.end > data_size)
        user_error(where + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                   "] lie beyond the data section of " + std::to_string(data_size) + " bytes (truncated file?)");
      const int64_t want = info.n_elements() * dtype_size(info.dtype);
      if (info.end - info.begin != want)
        user_error(where + ": " + std::to_string(info.end - info.begin) + " bytes for shape " + shape_text(info.shape) +
                   " of " + info.dtype + " (" + std::to_string(want) + " expected)");
      tensors_.emplace(name, std::move(info));
    }
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), size_t(size_));
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_t(size_));
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), map_(std::exchange(o.map_, nullptr)), size_(o.size_),
      data_offset_(o.data_offset_), tensors_(std::move(o.tensors_)) {}

std::string SafetensorsFile::header() const {
  return std::string(reinterpret_cast<const char*>(map_ + 8), size_t(data_offset_ - 8));
}

void SafetensorsFile::read_f32(const std::string& name, float* out) const {
  read_f32(name, 0, tensors_.at(name).n_elements(), out);
}

void SafetensorsFile::read_f32(const std::string& name, int64_t first, int64_t n, float* out) const {
  const TensorInfo& t = tensors_.at(name);
  SAE_ASSERT(first >= 0 && n >= 0 && first + n <= t.n_elements(), "element range outside tensor " + name);
  const unsigned char* p = map_ + data_offset_ + t.begin + first * dtype_size(t.dtype);
  // memcpy per element: the data section need not be aligned.
  if (t.dtype == "F32") {
    std::memcpy(out, p, size_t(n) * 4);
  } else if (t.dtype == "F64") {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = float(v);
    }
  } else {
    if (t.dtype == "BF16") {  // its own loop, which the compiler vectorises
      for (int64_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, p + 2 * i, 2);
        out[i] = bf16_to_float(bits);
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      uint16_t bits;
      std::memcpy(&bits, p + 2 * i, 2);
      out[i] = f16_to_float(bits);
    }
  }
}

Checkpoint::Checkpoint(const std::string& model_dir) : dir_(model_dir) {
  namespace fs = std::filesystem;
  const std::string index = (fs::path(model_dir) / "model.safetensors.index.json").string();
  const std::string single = (fs::path(model_dir) / "model.safetensors").string();
  if (path_exists(index)) {
    json j;
    try {
      j = json::parse(read_file(index));
    } catch (const json::exception& e) {
      user_error(index + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      user_error(index + ": needs an object \"weight_map\" {tensor: file}");
    std::map<std::string, size_t> file_index;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
        user_error(index + ": weight_map[\"" + name + "\"] must be a file name in the model directory");
      const std::string f = file.get<std::string>();
      if (!file_index.count(f)) {
        const std::string p = (fs::path(model_dir) / f).string();
        if (!path_exists(p)) user_error(index + ": lists " + f + ", which does not exist in " + model_dir);
        file_index[f] = files_.size();
        files_.emplace_back(p);
      }
      const size_t k = file_index[f];
      if (!files_[k].tensors().count(name))
        user_error(files_[k].path() + ": lacks tensor " + name + " that " + index + " places there");
      where_[name] = k;
    }
  } else if (path_exists(single)) {
    files_.emplace_back(single);
    for (auto& [name, _] : files_[0].tensors()) where_[name] = 0;
  } else {
    user_error(model_dir + ": no model.safetensors or model.safetensors.index.json (a Hugging Face model directory "
               "with safetensors weights is needed)");
  }
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) user_error(dir_ + ": checkpoint lacks tensor " + name);
  return files_[it->second].tensors().at(name);
}

const SafetensorsFile& Checkpoint::checked(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = where_.find(name);
  if (it == where_.end()) user_error(dir_ + ": checkpoint lacks tensor " + name);
  const SafetensorsFile& f = files_[it->second];
  const TensorInfo& t = f.tensors().at(name);
  if (t.shape != shape)
    user_error(f.path() + ": tensor " + name + " has shape " + shape_text(t.shape) + ", the config implies " +
               shape_text(shape));
  return f;
}

std::vector<float> Checkpoint::load(const std::string& name, const std::vector<int64_t>& shape) const {
  const SafetensorsFile& f = checked(name, shape);
  std::vector<float> out(size_t(f.tensors().at(name).n_elements()));
  f.read_f32(name, out.data());
  return out;
}

void Checkpoint::load_rows(const std::string& name, const std::vector<int64_t>& shape, const int32_t* rows,
                           int64_t count, float* out) const {
  SAE_ASSERT(shape.size() == 2, "load_rows needs a 2-D tensor");
  const SafetensorsFile& f = checked(name, shape);
  const int64_t cols = shape[1];
  for (int64_t i = 0; i < count; ++i) {
    if (rows[i] < 0 || rows[i] >= shape[0])
      user_error(f.path() + ": row " + std::to_string(rows[i]) + " of tensor " + name + " does not exist");
    f.read_f32(name, int64_t(rows[i]) * cols, cols, out + i * cols);
  }
}

namespace {
// FNV-1a: a hash that is the same on every machine and build.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

std::string Checkpoint::identity() const {
  std::string s;
  for (const auto& f : files_)
    s += std::filesystem::path(f.path()).filename().string() + ":" + std::to_string(f.file_size()) + ":" +
         std::to_string(fnv1a(f.header())) + ";";
  return s;
}

}  // namespace saepipe
