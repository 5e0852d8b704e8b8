// Hugging Face safetensors checkpoints, memory-mapped. A file is: 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// "__metadata__": {...}}, then the data (offsets are relative to the end of the header).
// A model directory holds model.safetensors, or shards listed by model.safetensors.index.json
// ({"weight_map": {"name": "model-0000k-of-0000n.safetensors"}}).
//
// Every offset, shape and dtype is checked when the file is opened: a bad file is a user error
// (exit 2) naming the file and the tensor. Tensors are read as float32 (F32, F16, BF16, F64).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace saepipe {

struct TensorInfo {
  std::string dtype;           // "F32", "F16", "BF16", "F64"
  std::vector<int64_t> shape;  // row-major
  int64_t begin = 0, end = 0;  // byte range inside the file's data section
  int64_t n_elements() const;
};

// One .safetensors file, mapped read-only for as long as the object lives. Move-only.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  int64_t file_size() const { return size_; }
  // The raw header bytes (for fingerprints: same header and size means the same layout).
  std::string header() const;
  // Converts tensor `name` (which must exist) to float32 into out[n_elements].
  void read_f32(const std::string& name, float* out) const;
  // Elements [first, first + count) of tensor `name` (flat, row-major) as float32 into out[count].
  void read_f32(const std::string& name, int64_t first, int64_t count, float* out) const;

 private:
  std::string path_;
  const unsigned char* map_ = nullptr;
  int64_t size_ = 0, data_offset_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

// All safetensors files of a model directory, tensors addressed by name.
class Checkpoint {
 public:
  // model_dir/model.safetensors.index.json when present, else model_dir/model.safetensors.
  explicit Checkpoint(const std::string& model_dir);

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // Tensor `name` as float32; user error naming the file and tensor when it is missing or its
  // shape is not `shape` (the shape the config implies).
  std::vector<float> load(const std::string& name, const std::vector<int64_t>& shape) const;
  // Rows rows[0..count) of the 2-D tensor `name` (shape checked as load does) into
  // out [count, shape[1]] as float32; user error for a row outside the tensor.
  void load_rows(const std::string& name, const std::vector<int64_t>& shape, const int32_t* rows, int64_t count,
                 float* out) const;
  // A short text identifying the checkpoint's content layout (headers and sizes of its files).
  std::string identity() const;
  const std::string& dir() const { return dir_; }

 private:
  const SafetensorsFile& checked(const std::string& name, const std::vector<int64_t>& shape) const;

  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace saepipe
