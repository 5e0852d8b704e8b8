#include "pipeline/model/token_source.hpp"

#include <charconv>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "pipeline/core/errors.hpp"
#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/model/bpe_tokenizer.hpp"
#include "pipeline/model/hf_tokenizer.hpp"

namespace saepipe {

namespace {

constexpr int32_t kLlmcMagic = 20240520;
constexpr int64_t kLlmcHeaderBytes = 256 * 4;

// A read-only mapping of a whole file. Move-only.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) user_error(path + ": cannot open token file (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      user_error(path + ": cannot stat token file (" + std::strerror(errno) + ")");
    }
    size_ = int64_t(st.st_size);
    if (size_ > 0) {
      void* m = ::mmap(nullptr, size_t(size_), PROT_READ, MAP_PRIVATE, fd, 0);
      if (m == MAP_FAILED) {
        ::close(fd);
        user_error(path + ": cannot map token file (" + std::strerror(errno) + ")");
      }
      data_ = static_cast<const unsigned char*>(m);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_t(size_));
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  int64_t size_ = 0;
};

enum class Elem { U16, I32, I64 };

// Tokens stored as little-endian integers at a byte offset of a mapped file.
class MappedTokens final : public TokenSource {
 public:
  MappedTokens(const std::string& path, std::string format, int64_t offset, int64_t count, Elem elem,
               std::unique_ptr<MappedFile> file)
      : format_(std::move(format)), offset_(offset), count_(count), elem_(elem), file_(std::move(file)) {
    path_ = path;
  }
  int64_t size() const override { return count_; }
  std::string format() const override { return format_; }
  void read(int64_t first, int64_t count, int32_t* out) const override {
    SAE_ASSERT(first >= 0 && count >= 0 && first + count <= count_, path_ + ": token range out of bounds");
    const unsigned char* p = file_->data() + offset_;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t k = first + i;
      if (elem_ == Elem::U16) {
        uint16_t v;
        std::memcpy(&v, p + 2 * k, 2);
        out[i] = int32_t(v);
      } else if (elem_ == Elem::I32) {
        std::memcpy(&out[i], p + 4 * k, 4);
      } else {
        int64_t v;
        std::memcpy(&v, p + 8 * k, 8);
        out[i] = v < 0 || v > INT32_MAX ? -1 : int32_t(v);  // out of range: caught by the id check
      }
    }
  }

 private:
  std::string format_;
  int64_t offset_, count_;
  Elem elem_;
  std::unique_ptr<MappedFile> file_;
};

// Tokens held in memory (text, JSONL, HDF5).
class MemoryTokens final : public TokenSource {
 public:
  MemoryTokens(const std::string& path, std::string format, std::vector<int32_t> ids)
      : format_(std::move(format)), ids_(std::move(ids)) {
    path_ = path;
  }
  int64_t size() const override { return int64_t(ids_.size()); }
  std::string format() const override { return format_; }
  void read(int64_t first, int64_t count, int32_t* out) const override {
    SAE_ASSERT(first >= 0 && count >= 0 && first + count <= size(), path_ + ": token range out of bounds");
    std::memcpy(out, ids_.data() + first, size_t(count) * sizeof(int32_t));
  }

 private:
  std::string format_;
  std::vector<int32_t> ids_;
};

std::unique_ptr<TokenSource> open_llmc(const std::string& path) {
  auto f = std::make_unique<MappedFile>(path);
  if (f->size() < kLlmcHeaderBytes)
    user_error(path + ": llm.c token file shorter than its 1024-byte header (" + std::to_string(f->size()) + " bytes)");
  int32_t header[3];
  std::memcpy(header, f->data(), sizeof header);
  if (header[0] != kLlmcMagic)
    user_error(path + ": not an llm.c token file (magic " + std::to_string(header[0]) + ", expected " +
               std::to_string(kLlmcMagic) + ")");
  if (header[1] != 1)
    user_error(path + ": llm.c token file version " + std::to_string(header[1]) + " is not supported (1: uint16 tokens)");
  const int64_t count = header[2];
  const int64_t want = kLlmcHeaderBytes + 2 * count;
  if (count < 0 || f->size() != want)
    user_error(path + ": llm.c header says " + std::to_string(count) + " tokens (" + std::to_string(want) +
               " bytes) but the file has " + std::to_string(f->size()) + " bytes");
  return std::make_unique<MappedTokens>(path, "llmc", kLlmcHeaderBytes, count, Elem::U16, std::move(f));
}

std::unique_ptr<TokenSource> open_uint16(const std::string& path) {
  auto f = std::make_unique<MappedFile>(path);
  if (f->size() % 2 != 0)
    user_error(path + ": raw uint16 token file has an odd size (" + std::to_string(f->size()) + " bytes)");
  const int64_t count = f->size() / 2;
  return std::make_unique<MappedTokens>(path, "uint16", 0, count, Elem::U16, std::move(f));
}

// NumPy format 1.0/2.0/3.0: magic "\x93NUMPY", major, minor, header length (2 or 4 bytes LE),
// a Python dict literal {'descr': '<i4', 'fortran_order': False, 'shape': (n,), }.
std::unique_ptr<TokenSource> open_npy(const std::string& path) {
  auto f = std::make_unique<MappedFile>(path);
  const unsigned char* d = f->data();
  if (f->size() < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0) user_error(path + ": not a NumPy .npy file (bad magic)");
  const int major = d[6];
  if (major < 1 || major > 3) user_error(path + ": .npy format version " + std::to_string(major) + " is not supported");
  int64_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = d[8] | (d[9] << 8);
    start = 10;
  } else {
    if (f->size() < 12) user_error(path + ": truncated .npy header");
    hlen = int64_t(d[8]) | (int64_t(d[9]) << 8) | (int64_t(d[10]) << 16) | (int64_t(d[11]) << 24);
    start = 12;
  }
  if (start + hlen > f->size()) user_error(path + ": truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(d + start), size_t(hlen));
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")))
    user_error(path + ": .npy header lacks 'descr'");
  const std::string descr = m[1];
  Elem elem;
  int64_t esize;
  if (descr == "<u2" || descr == "|u2") { elem = Elem::U16; esize = 2; }
  else if (descr == "<i4") { elem = Elem::I32; esize = 4; }
  else if (descr == "<i8") { elem = Elem::I64; esize = 8; }
  else user_error(path + ": .npy dtype " + descr + " is not supported (int32, int64 or uint16, little-endian)");
  if (std::regex_search(header, std::regex("'fortran_order'\\s*:\\s*True")))
    user_error(path + ": .npy array is in Fortran order; save it in C order");
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    user_error(path + ": .npy header lacks 'shape'");
  int64_t count = 1;
  {
    std::string dims = m[1];
    std::stringstream ss(dims);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(" L"));
      item.erase(item.find_last_not_of(" L") + 1);
      if (item.empty()) continue;
      int64_t dim = 0;
      const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), dim);
      // A dimension no int64 holds, or a product past the file's size, can't describe this file.
      if (ec != std::errc() || end != item.data() + item.size() || dim < 0 ||
          __builtin_mul_overflow(count, dim, &count) || count > int64_t(f->size()))
        user_error(path + ": bad .npy shape (" + dims + ")");
    }
  }
  const int64_t data_start = start + hlen;
  if (f->size() - data_start != count * esize)
    user_error(path + ": .npy shape needs " + std::to_string(count * esize) + " data bytes but the file has " +
               std::to_string(f->size() - data_start) + " (truncated?)");
  return std::make_unique<MappedTokens>(path, "npy", data_start, count, elem, std::move(f));
}

std::unique_ptr<TokenSource> open_hdf5(const std::string& path, const std::string& dataset) {
  h5::silence_errors();
  h5::File f = h5::open_file(path);
  if (!f.exists(dataset)) user_error(path + ": no dataset \"" + dataset + "\" (set harvest.tokens_dataset)");
  h5::Dataset ds = f.open_dataset(dataset);
  const std::string t = ds.type_name();
  if (t.rfind("int", 0) != 0 && t.rfind("uint", 0) != 0)
    user_error(ds.where() + ": token dataset has type " + t + "; an integer type is needed");
  std::vector<int64_t> ids = ds.read_all<int64_t>();
  std::vector<int32_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = ids[i] < 0 || ids[i] > INT32_MAX ? -1 : int32_t(ids[i]);
  return std::make_unique<MemoryTokens>(path, "hdf5", std::move(out));
}

std::unique_ptr<TokenSource> open_text(const TokenInputOptions& o, bool jsonl) {
  // tokenizer.json when the model has one (every family), else GPT-2's vocab.json + merges.txt.
  const std::unique_ptr<HfTokenizer> hf = open_hf_tokenizer(o.model_dir);
  std::unique_ptr<Gpt2Tokenizer> gpt2;
  if (!hf) gpt2 = std::make_unique<Gpt2Tokenizer>(o.model_dir);
  auto encode = [&](std::string_view text, const std::string& where) {
    return hf ? hf->encode(text, where) : gpt2->encode(text, where);
  };
  std::vector<int32_t> ids;
  if (!jsonl) {
    ids = encode(read_file(o.path), o.path);
  } else {
    std::ifstream in(o.path, std::ios::binary);
    if (!in) user_error(o.path + ": cannot open for reading");
    std::string line;
    int64_t line_no = 0;
    bool first = true;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = o.path + ":" + std::to_string(line_no);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        user_error(where + ": not a JSON object");
      }
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
        user_error(where + ": needs a string field \"text\"");
      if (!first && o.eos_token >= 0) ids.push_back(int32_t(o.eos_token));
      first = false;
      const std::vector<int32_t> doc = encode(j["text"].get<std::string>(), where);
      ids.insert(ids.end(), doc.begin(), doc.end());
    }
  }
  return std::make_unique<MemoryTokens>(o.path, jsonl ? "jsonl" : "text", std::move(ids));
}

std::string auto_format(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".bin") {
    std::ifstream in(path, std::ios::binary);
    int32_t magic = 0;
    in.read(reinterpret_cast<char*>(&magic), 4);
    return in && magic == kLlmcMagic ? "llmc" : "uint16";
  }
  if (ext == ".npy") return "npy";
  if (ext == ".h5" || ext == ".hdf5") return "hdf5";
  if (ext == ".txt") return "text";
  if (ext == ".jsonl" || ext == ".json") return "jsonl";
  user_error(path + ": cannot tell the token format from the extension \"" + ext +
             "\"; set harvest.token_format (llmc, uint16, npy, hdf5, text, jsonl)");
}

}  // namespace

std::unique_ptr<TokenSource> open_token_source(const TokenInputOptions& o) {
  if (!path_exists(o.path)) user_error(o.path + ": token file not found");
  if (std::filesystem::is_directory(o.path)) user_error(o.path + ": is a directory, not a token file");
  const std::string format = o.format == "auto" ? auto_format(o.path) : o.format;
  if (format == "llmc") return open_llmc(o.path);
  if (format == "uint16") return open_uint16(o.path);
  if (format == "npy") return open_npy(o.path);
  if (format == "hdf5") return open_hdf5(o.path, o.dataset);
  if (format == "text") return open_text(o, false);
  if (format == "jsonl") return open_text(o, true);
  user_error(o.path + ": unknown token format \"" + format + "\"");
}

}  // namespace saepipe
