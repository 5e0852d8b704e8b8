// Shared by the HDF5 layer's sources (h5.cpp, h5_attributes.cpp); not part of its interface.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>

#include "pipeline/core/errors.hpp"

namespace saepipe::h5::detail {

// HDF5's innermost reason for the last failure, e.g. " (HDF5: file signature not found)"; "" when
// HDF5 recorded none.
std::string hdf5_reason();

// Checks an HDF5 return code; the message names the object and the operation.
template <class T>
T check(T rc, const std::string& where, const std::string& what) {
  if (rc < 0) internal_error(where + ": " + what + " failed" + hdf5_reason());
  return rc;
}

// Checks an HDF5 call that reads a file's structure (links, shapes, types, attributes): its
// failure means the file is damaged or not what it claims, so it is data corruption (exit 3)
// naming the object, not an internal error (found by fuzzing the readers with mutated files).
template <class T>
T check_read(T rc, const std::string& where, const std::string& what) {
  if (rc < 0) corrupt_error(where + ": " + what + " failed (a damaged file?)" + hdf5_reason());
  return rc;
}

// HDF5 memory types of the C++ element types.
template <class T> hid_t memory_type();
template <> inline hid_t memory_type<float>() { return H5T_NATIVE_FLOAT; }
template <> inline hid_t memory_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> inline hid_t memory_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> inline hid_t memory_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> inline hid_t memory_type<uint8_t>() { return H5T_NATIVE_UINT8; }

}  // namespace saepipe::h5::detail
