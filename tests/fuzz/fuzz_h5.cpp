// Fuzzes the readers of saepipe's HDF5 files with mutated files. The input picks a real file
// of a tiny run (tests/fuzz/data/h5/, made by make_h5_seeds.sh) and a list of edits made with
// the HDF5 library, then the file's reader runs on the result:
//   byte 0 % 5: 0 sae.h5 (read_sae_checkpoint)    1 train_state.h5 (read_train_state)
//               2 features.h5 (read_feature_stats) 3 examples.h5 (read_feature_examples)
//               4 a store shard (StoreReader over a one-shard store with a fixed manifest: 512
//                 rows of d_model 4, hook "h"; every row, token, sequence and position read)
//   then edits of 6 bytes each, [op, a, b, c, d, e]; objects are picked by index (a) among the
//   file's attributes or datasets (all groups), values come from the input:
//     0 set an integer attribute (b..e: a value, sign and magnitude spread over 0..2^56, or
//       INT64_MIN / INT64_MAX)
//     1 set a string attribute (b..e bytes)     2 set a float attribute (b..e as float32 bits)
//     3 delete an attribute                     4 delete a dataset
//     5 replace a dataset by one of another shape and type (b: rank and dims, c: type), filled
//       with the input's next bytes             6 write values (NaN, Inf, huge, negative) into a
//       dataset through HDF5 (checksums stay valid)
//     7 flip a bit of a dataset's stored chunk (what Fletcher32 must catch)
// Edits of the file's structure through the library keep every file one HDF5 can parse: the
// library's own parser is not the subject (byte-level mutation of HDF5 metadata hangs
// libhdf5 1.10.8 itself in H5HG_read on a damaged global heap within a minute, which saepipe
// cannot fix); what is fuzzed is every check saepipe's readers make on what they read.
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "pipeline/core/fs_util.hpp"
#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"
#include "pipeline/io/h5.hpp"
#include "pipeline/io/stats_file.hpp"
#include "pipeline/io/train_state.hpp"
#include "tests/fuzz/fuzz_common.hpp"

#ifndef SAEPIPE_FUZZ_H5_DIR
#error "SAEPIPE_FUZZ_H5_DIR: the directory of the real files (tests/fuzz/data/h5)"
#endif

namespace {

constexpr int64_t kRows = 512, kD = 4;
const char* const kFiles[] = {"sae.h5", "train_state.h5", "features.h5", "examples.h5", "shard.h5"};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

const std::string& original(int which) {
  static std::string files[5];
  if (files[which].empty()) files[which] = read_bytes(std::string(SAEPIPE_FUZZ_H5_DIR) + "/" + kFiles[which]);
  if (files[which].empty()) std::abort();  // the fixture is missing
  return files[which];
}

std::string store_dir() {
  static const std::string dir = [] {
    const std::string d = saepipe::fuzz::scratch_dir() + "/store";
    saepipe::make_dirs(d);
    saepipe::StoreManifest m;
    m.d_model = kD;
    m.dtype = "float32";
    m.hooks = {"h"};
    m.n_tokens = kRows;
    m.context = 64;
    m.source = {{"type", "fuzz"}};
    m.shards = {{"shard-00000.h5", 0, kRows, 0}};
    m.write(d);
    return d;
  }();
  return dir;
}

// The objects of a file: attribute owners with their attribute names, and datasets.
struct Objects {
  std::vector<std::pair<std::string, std::string>> attributes;  // (object path, name)
  std::vector<std::string> datasets;
};

herr_t collect_attribute(hid_t, const char* name, const H5A_info_t*, void* data) {
  auto* v = static_cast<std::pair<std::vector<std::pair<std::string, std::string>>*, std::string>*>(data);
  v->first->push_back({v->second, name});
  return 0;
}

herr_t visit(hid_t root, const char* name, const H5O_info_t* info, void* data) {
  auto* o = static_cast<Objects*>(data);
  const std::string path = std::string("/") + (std::strcmp(name, ".") == 0 ? "" : name);
  if (info->type == H5O_TYPE_DATASET) o->datasets.push_back(path);
  const hid_t obj = H5Oopen(root, name, H5P_DEFAULT);
  if (obj >= 0) {
    std::pair<std::vector<std::pair<std::string, std::string>>*, std::string> ctx{&o->attributes, path};
    hsize_t idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attribute, &ctx);
    H5Oclose(obj);
  }
  return 0;
}

uint32_t word(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

void set_attribute(hid_t file, const std::string& obj_path, const std::string& name, hid_t type, const void* value) {
  const hid_t obj = H5Oopen(file, obj_path.c_str(), H5P_DEFAULT);
  if (obj < 0) return;
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, type, value);
    H5Aclose(a);
  }
  H5Sclose(space);
  H5Oclose(obj);
}

// Applies the edits of `data` (6 bytes each) to the HDF5 file at `path`.
void edit(const std::string& path, const uint8_t* data, size_t size) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) return;
  for (size_t at = 0; at + 6 <= size; at += 6) {
    const uint8_t* e = data + at;
    Objects o;
    H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &o);
    const uint32_t v = word(e + 2);
    switch (e[0] % 8) {
      case 0:
      case 1:
      case 2:
      case 3: {
        if (o.attributes.empty()) break;
        const auto& [obj, name] = o.attributes[e[1] % o.attributes.size()];
        if (e[0] % 8 == 0) {
          const int64_t magnitude = int64_t(std::ldexp(double(v >> 8), int(e[2] % 40) - 8));  // < 2^56
          const int64_t value = e[2] >= 250 ? (e[2] & 1 ? INT64_MIN : INT64_MAX) : (e[2] & 1 ? -magnitude : magnitude);
          set_attribute(file, obj, name, H5T_NATIVE_INT64, &value);
        } else if (e[0] % 8 == 1) {
          const hid_t t = H5Tcopy(H5T_C_S1);
          H5Tset_size(t, H5T_VARIABLE);
          std::string text(reinterpret_cast<const char*>(e + 2), 4);
          const char* p = text.c_str();
          set_attribute(file, obj, name, t, &p);
          H5Tclose(t);
        } else if (e[0] % 8 == 2) {
          float f;
          std::memcpy(&f, &v, 4);
          set_attribute(file, obj, name, H5T_NATIVE_FLOAT, &f);
        } else {
          H5Adelete_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT);
        }
        break;
      }
      case 4:
        if (!o.datasets.empty()) H5Ldelete(file, o.datasets[e[1] % o.datasets.size()].c_str(), H5P_DEFAULT);
        break;
      case 5: {
        if (o.datasets.empty()) break;
        const std::string& name = o.datasets[e[1] % o.datasets.size()];
        H5Ldelete(file, name.c_str(), H5P_DEFAULT);
        const int rank = e[2] % 3;
        hsize_t dims[2] = {hsize_t(e[3] % 17), hsize_t(e[4] % 9)};
        static const hid_t kTypes[] = {H5T_IEEE_F32LE, H5T_IEEE_F64LE, H5T_STD_I32LE, H5T_STD_I64LE,
                                       H5T_STD_U8LE,   H5T_IEEE_F32BE, H5T_STD_I16LE, H5T_C_S1};
        const hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, nullptr);
        const hid_t d = H5Dcreate2(file, name.c_str(), kTypes[e[5] % 8], space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d >= 0) {
          std::vector<uint8_t> fill(4096, e[5]);
          if (H5Tget_class(kTypes[e[5] % 8]) != H5T_STRING) H5Dwrite(d, kTypes[e[5] % 8], H5S_ALL, H5S_ALL, H5P_DEFAULT, fill.data());
          H5Dclose(d);
        }
        H5Sclose(space);
        break;
      }
      case 6: {
        if (o.datasets.empty()) break;
        const hid_t d = H5Dopen2(file, o.datasets[e[1] % o.datasets.size()].c_str(), H5P_DEFAULT);
        if (d < 0) break;
        const hid_t space = H5Dget_space(d);
        const hssize_t n = H5Sget_simple_extent_npoints(space);
        if (n > 0 && n < (1 << 20)) {
          static const double kValues[] = {NAN, INFINITY, -INFINITY, 1e300, -1.0, 0.0, 3e9, -3e9};
          std::vector<double> buf(static_cast<size_t>(n));
          H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
          buf[size_t(v % uint32_t(n))] = kValues[e[2] % 8];
          H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
        }
        H5Sclose(space);
        H5Dclose(d);
        break;
      }
      case 7: {  // a bit flipped in the first stored chunk, on disk, after the file is closed
        if (o.datasets.empty()) break;
        const hid_t d = H5Dopen2(file, o.datasets[e[1] % o.datasets.size()].c_str(), H5P_DEFAULT);
        if (d < 0) break;
        haddr_t addr = HADDR_UNDEF;
        hsize_t bytes = 0;
        unsigned mask = 0;
        hsize_t offset[2] = {0, 0};
        const hid_t dcpl = H5Dget_create_plist(d);
        if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
          H5Dget_chunk_info(d, H5S_ALL, 0, offset, &mask, &addr, &bytes);
        } else {
          addr = H5Dget_offset(d);
          bytes = H5Dget_storage_size(d);
        }
        H5Pclose(dcpl);
        H5Dclose(d);
        if (addr != HADDR_UNDEF && bytes > 0) {
          H5Fclose(file);
          std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
          f.seekg(std::streamoff(addr + v % bytes));
          char c = 0;
          f.read(&c, 1);
          c = char(c ^ (1 << (e[2] % 8)));
          f.seekp(std::streamoff(addr + v % bytes));
          f.write(&c, 1);
          return;  // the file is closed: later edits are dropped
        }
        break;
      }
    }
  }
  H5Fclose(file);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  saepipe::h5::silence_errors();
  const int which = data[0] % 5;
  const std::string path = which == 4 ? store_dir() + "/shard-00000.h5" : saepipe::fuzz::scratch_dir() + "/file.h5";
  const std::string& bytes = original(which);
  saepipe::fuzz::write_bytes(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  edit(path, data + 1, size - 1);
  saepipe::fuzz::expect_clean_rejection([&] {
    switch (which) {
      case 0: saepipe::read_sae_checkpoint(path); break;
      case 1: saepipe::read_train_state(path); break;
      case 2: saepipe::read_feature_stats(path); break;
      case 3: saepipe::read_feature_examples(path); break;
      default: {
        saepipe::StoreReader r(store_dir(), "h");
        std::vector<float> x(static_cast<size_t>(kRows * kD));
        std::vector<int32_t> t(static_cast<size_t>(kRows));
        std::vector<int64_t> s(static_cast<size_t>(kRows));
        r.read_rows(0, kRows, x.data());
        r.read_tokens(0, kRows, t.data());
        r.read_sequence(0, kRows, s.data());
        r.read_position(0, kRows, t.data());
      }
    }
  });
  return 0;
}
