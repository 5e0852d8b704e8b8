// Whole chunks of a dataset as stored (H5Dread_chunk / H5Dwrite_chunk) and the layout facts a
// caller needs to use them: chunk dimensions and the filter pipeline.
#include <string>
#include <vector>

#include "pipeline/io/h5.hpp"
#include "pipeline/io/h5_internal.hpp"

namespace saepipe::h5 {

using detail::check;
using detail::check_read;  // reads of a file's structure: a damaged file is exit 3
using detail::hdf5_reason;

namespace {

// The chunk's offset in dataset coordinates: (first_row, 0, 0, ...).
std::vector<hsize_t> chunk_offset(const Dataset& ds, int64_t first_row) {
  std::vector<hsize_t> offset(ds.dims().size(), 0);
  if (offset.empty()) internal_error(ds.where() + ": a scalar dataset has no chunks");
  offset[0] = hsize_t(first_row);
  return offset;
}

std::string chunk_text(int64_t first_row) { return "chunk at row " + std::to_string(first_row); }

}  // namespace

std::vector<int64_t> Dataset::chunk_dims() const {
  if (!is_chunked()) return {};
  PropList dcpl(check_read(H5Dget_create_plist(id_), where(), "H5Dget_create_plist"));
  std::vector<hsize_t> dims(32, 0);
  const int rank = check_read(H5Pget_chunk(dcpl.id(), int(dims.size()), dims.data()), where(), "H5Pget_chunk");
  return std::vector<int64_t>(dims.begin(), dims.begin() + rank);
}

std::vector<int> Dataset::filters() const {
  PropList dcpl(check_read(H5Dget_create_plist(id_), where(), "H5Dget_create_plist"));
  const int n = check_read(H5Pget_nfilters(dcpl.id()), where(), "H5Pget_nfilters");
  std::vector<int> ids;
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, config = 0;
    size_t n_values = 0;
    char filter_name[64];
    ids.push_back(check_read(H5Pget_filter2(dcpl.id(), unsigned(i), &flags, &n_values, nullptr, sizeof filter_name,
                                       filter_name, &config),
                        where(), "H5Pget_filter2"));
  }
  return ids;
}

bool Dataset::stored_little_endian() const {
  Datatype t(check_read(H5Dget_type(id_), where(), "H5Dget_type"));
  return H5Tget_order(t.id()) == H5T_ORDER_LE;
}

Dataset::ChunkInfo Dataset::chunk_info(int64_t first_row) const {
  const std::vector<hsize_t> offset = chunk_offset(*this, first_row);
  unsigned mask = 0;
  haddr_t addr = HADDR_UNDEF;
  hsize_t bytes = 0;
  if (H5Dget_chunk_info_by_coord(id_, offset.data(), &mask, &addr, &bytes) < 0)
    corrupt_error(where() + ": the index of the " + chunk_text(first_row) + " is unreadable" + hdf5_reason());
  return {addr == HADDR_UNDEF ? 0 : int64_t(bytes), mask};
}

uint32_t Dataset::read_chunk(int64_t first_row, void* buf) const {
  const std::vector<hsize_t> offset = chunk_offset(*this, first_row);
  uint32_t mask = 0;
  if (H5Dread_chunk(id_, H5P_DEFAULT, offset.data(), &mask, buf) < 0)
    corrupt_error(where() + ": read of the " + chunk_text(first_row) + " failed" + hdf5_reason());
  return mask;
}

void Dataset::write_chunk(int64_t first_row, const void* buf, int64_t bytes, uint32_t filter_mask) const {
  const std::vector<hsize_t> offset = chunk_offset(*this, first_row);
  check(H5Dwrite_chunk(id_, H5P_DEFAULT, filter_mask, offset.data(), size_t(bytes), buf), where(),
        "write of the " + chunk_text(first_row));
}

}  // namespace saepipe::h5
