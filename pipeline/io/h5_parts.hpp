// A rank's part of a dataset (latent sharding: each rank holds a range of the latents, the
// files hold the whole dictionary): spans of a 1-D dataset or one block of an N-D one,
// read independently from any file, written collectively into a file every rank opened with
// parallel HDF5 (Debian's hdf5-openmpi, MPI-IO).
//
// A collectively written file is the file a serial writer makes (same datasets, types, chunks,
// Fletcher32 checksums): a chunk several ranks write into is assembled by HDF5 before it is
// filtered. Parallel HDF5 requires, of every rank of the file's communicator, the same
// sequence of calls that create, open or close the file, its datasets and groups, and that
// write attributes (with the same values), and every write of a filtered dataset must be a
// collective transfer (H5FD_MPIO_COLLECTIVE): a rank with nothing to add writes an empty
// selection. HDF5 1.10 allocates a parallel file's chunks when the dataset is created
// (H5D_ALLOC_TIME_EARLY, the MPI-IO driver's rule), a serial file's when first written; the
// datasets' shapes, types, chunks, filters and values are the same.
//
// A failure inside such a sequence on one rank leaves the others waiting inside a collective:
// callers run it under abort_on_error (pipeline/core/mpi_env.hpp).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "pipeline/io/h5.hpp"

namespace saepipe::h5 {

// Elements [first, first + count) of a 1-D dataset or buffer.
struct Span {
  int64_t first = 0, count = 0;
};

// Creates (truncating) `path` through MPI-IO over `comm`: collective, every rank of comm calls it.
File create_file_collective(const std::string& path, MPI_Comm comm);

// Collective over the file's communicator: this rank's elements of the 1-D dataset `ds` at
// `file_spans` (increasing, disjoint) from `memory_spans` of `data` (a buffer of memory_size
// elements; increasing, disjoint, the same total), taken in order. No spans: nothing from this
// rank (it still takes part). T: float, double, int32_t, int64_t, uint8_t.
template <class T>
void write_spans_collective(const Dataset& ds, const std::vector<Span>& file_spans, const T* data,
                            int64_t memory_size, const std::vector<Span>& memory_spans);

// Collective as above: the block [start, start + count) of an N-D dataset from `data`, row-major
// [count...]. An empty count: nothing from this rank.
template <class T>
void write_block_collective(const Dataset& ds, const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                            const T* data);

// Independent (any file, serial or parallel): the elements of `file_spans` of a 1-D dataset
// into `memory_spans` of out (memory_size elements), in order. A failed read (checksum) is a
// corrupt error naming the dataset.
template <class T>
void read_spans(const Dataset& ds, const std::vector<Span>& file_spans, T* out, int64_t memory_size,
                const std::vector<Span>& memory_spans);

}  // namespace saepipe::h5
