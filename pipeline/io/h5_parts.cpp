// A rank's part of a dataset, read independently or written collectively (h5_parts.hpp).
#include "pipeline/io/h5_parts.hpp"

#include <algorithm>
#include <cerrno>
#include <string>

#include "pipeline/core/errors.hpp"
#include "pipeline/io/h5_internal.hpp"

namespace saepipe::h5 {

using detail::check;
using detail::hdf5_reason;
using detail::memory_type;

namespace {

int64_t total_count(const std::vector<Span>& spans) {
  int64_t n = 0;
  for (const Span& s : spans) n += s.count;
  return n;
}

// `space` (1-D, `extent` elements) restricted to the spans; none selected when there are none.
void select_spans(hid_t space, const std::vector<Span>& spans, int64_t extent, const std::string& where) {
  check(H5Sselect_none(space), where, "H5Sselect_none");
  int64_t end = 0;
  for (const Span& s : spans) {
    if (s.count == 0) continue;
    if (s.first < end || s.count < 0 || s.first + s.count > extent)
      internal_error(where + ": span " + std::to_string(s.first) + "+" + std::to_string(s.count) +
                     " out of order or outside " + std::to_string(extent) + " elements");
    const hsize_t start = hsize_t(s.first), count = hsize_t(s.count);
    check(H5Sselect_hyperslab(space, H5S_SELECT_OR, &start, nullptr, &count, nullptr), where, "select elements");
    end = s.first + s.count;
  }
}

// The dataset's 1-D extent, checked.
int64_t extent_1d(const Dataset& ds) {
  const std::vector<int64_t> dims = ds.dims();
  if (dims.size() != 1) internal_error(ds.where() + ": spans need a 1-D dataset");
  return dims[0];
}

// The file and memory dataspaces of a 1-D transfer by spans.
struct SpanSelection {
  Dataspace file, memory;
};
SpanSelection select_both(const Dataset& ds, const std::vector<Span>& file_spans, int64_t memory_size,
                          const std::vector<Span>& memory_spans) {
  const std::string where = ds.where();
  if (total_count(file_spans) != total_count(memory_spans))
    internal_error(where + ": file and memory spans hold different counts");
  SpanSelection sel;
  sel.file = Dataspace(check(H5Dget_space(ds.id()), where, "H5Dget_space"));
  select_spans(sel.file.id(), file_spans, extent_1d(ds), where);
  const hsize_t mem = hsize_t(std::max<int64_t>(1, memory_size));
  sel.memory = Dataspace(check(H5Screate_simple(1, &mem, nullptr), where, "H5Screate_simple"));
  select_spans(sel.memory.id(), memory_spans, memory_size, where);
  return sel;
}

PropList collective_transfer(const std::string& where) {
  PropList dxpl(check(H5Pcreate(H5P_DATASET_XFER), where, "H5Pcreate"));
  check(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE), where, "H5Pset_dxpl_mpio");
  return dxpl;
}

}  // namespace

File create_file_collective(const std::string& path, MPI_Comm comm) {
  PropList fapl(check(H5Pcreate(H5P_FILE_ACCESS), path, "H5Pcreate"));
  check(H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL), path, "H5Pset_fapl_mpio");
  // As the serial files (h5.cpp): locking where the file system supports it; the MPI-IO
  // driver closes only when every object is closed (H5F_CLOSE_SEMI).
  check(H5Pset_file_locking(fapl.id(), true, true), path, "H5Pset_file_locking");
  check(H5Pset_fclose_degree(fapl.id(), H5F_CLOSE_SEMI), path, "H5Pset_fclose_degree");
  errno = 0;
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id());
  if (id < 0) user_error(path + ": cannot create HDF5 file (parallel)" + hdf5_reason());
  return File(id, H5Fclose, path, "/");
}

template <class T>
void write_spans_collective(const Dataset& ds, const std::vector<Span>& file_spans, const T* data,
                            int64_t memory_size, const std::vector<Span>& memory_spans) {
  SpanSelection sel = select_both(ds, file_spans, memory_size, memory_spans);
  PropList dxpl = collective_transfer(ds.where());
  check(H5Dwrite(ds.id(), memory_type<T>(), sel.memory.id(), sel.file.id(), dxpl.id(), data), ds.where(),
        "collective write of " + std::to_string(total_count(file_spans)) + " elements");
}

template <class T>
void write_block_collective(const Dataset& ds, const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                            const T* data) {
  const std::string where = ds.where();
  const std::vector<int64_t> dims = ds.dims();
  Dataspace file(check(H5Dget_space(ds.id()), where, "H5Dget_space"));
  bool empty = count.empty();
  for (int64_t c : count) empty |= c == 0;
  hsize_t one = 1;
  Dataspace memory;
  if (empty) {
    check(H5Sselect_none(file.id()), where, "H5Sselect_none");
    memory = Dataspace(check(H5Screate_simple(1, &one, nullptr), where, "H5Screate_simple"));
    check(H5Sselect_none(memory.id()), where, "H5Sselect_none");
  } else {
    if (start.size() != dims.size() || count.size() != dims.size())
      internal_error(where + ": block rank differs from the dataset's");
    for (size_t i = 0; i < dims.size(); ++i)
      if (start[i] < 0 || count[i] < 0 || start[i] + count[i] > dims[i]) internal_error(where + ": block outside the dataset");
    const std::vector<hsize_t> hs(start.begin(), start.end()), hc(count.begin(), count.end());
    check(H5Sselect_hyperslab(file.id(), H5S_SELECT_SET, hs.data(), nullptr, hc.data(), nullptr), where,
          "select block");
    memory = Dataspace(check(H5Screate_simple(int(hc.size()), hc.data(), nullptr), where, "H5Screate_simple"));
  }
  PropList dxpl = collective_transfer(where);
  check(H5Dwrite(ds.id(), memory_type<T>(), memory.id(), file.id(), dxpl.id(), data), where, "collective write");
}

template <class T>
void read_spans(const Dataset& ds, const std::vector<Span>& file_spans, T* out, int64_t memory_size,
                const std::vector<Span>& memory_spans) {
  if (total_count(file_spans) == 0) return;
  SpanSelection sel = select_both(ds, file_spans, memory_size, memory_spans);
  if (H5Dread(ds.id(), memory_type<T>(), sel.memory.id(), sel.file.id(), H5P_DEFAULT, out) < 0)
    corrupt_error(ds.where() + ": read failed (checksum mismatch or corrupt data)" + hdf5_reason());
}

#define SAE_H5_PARTS_INSTANTIATE(T)                                                                              \
  template void write_spans_collective<T>(const Dataset&, const std::vector<Span>&, const T*, int64_t,          \
                                          const std::vector<Span>&);                                             \
  template void write_block_collective<T>(const Dataset&, const std::vector<int64_t>&, const std::vector<int64_t>&, \
                                          const T*);                                                             \
  template void read_spans<T>(const Dataset&, const std::vector<Span>&, T*, int64_t, const std::vector<Span>&);
SAE_H5_PARTS_INSTANTIATE(float)
SAE_H5_PARTS_INSTANTIATE(double)
SAE_H5_PARTS_INSTANTIATE(int32_t)
SAE_H5_PARTS_INSTANTIATE(int64_t)
SAE_H5_PARTS_INSTANTIATE(uint8_t)
#undef SAE_H5_PARTS_INSTANTIATE

}  // namespace saepipe::h5
