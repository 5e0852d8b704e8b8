#include "pipeline/core/mpi_env.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>

#include "pipeline/core/errors.hpp"

namespace saepipe {

MpiEnv::MpiEnv(MPI_Comm comm) : comm_(comm) {
  SAE_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  SAE_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  SAE_MPI_CHECK(MPI_Get_processor_name(name, &len));
  host_.assign(name, len);
  MPI_Comm local;
  SAE_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  SAE_MPI_CHECK(MPI_Comm_rank(local, &local_rank_));
  SAE_MPI_CHECK(MPI_Comm_free(&local));
}

void MpiEnv::barrier() const { SAE_MPI_CHECK(MPI_Barrier(comm_)); }

void MpiEnv::all_or_none(const std::function<void()>& fn) const {
  int my_kind = 0;
  std::string my_text;
  try {
    fn();
  } catch (const SaeError& e) {
    my_kind = e.exit_code();
    my_text = e.what();
  }
  // The lowest failing rank speaks for all.
  int candidate = my_kind ? rank_ : INT_MAX;
  int first = INT_MAX;
  SAE_MPI_CHECK(MPI_Allreduce(&candidate, &first, 1, MPI_INT, MPI_MIN, comm_));
  if (first == INT_MAX) return;
  SAE_MPI_CHECK(MPI_Bcast(&my_kind, 1, MPI_INT, first, comm_));
  broadcast_string(my_text, first);
  SaeError shared(static_cast<ErrorKind>(my_kind), my_text);
  shared.set_collective();
  throw shared;
}

void MpiEnv::broadcast_string(std::string& s, int root) const {
  long long n = static_cast<long long>(s.size());
  SAE_MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm_));
  s.resize(static_cast<size_t>(n));
  // MPI counts are int: send in pieces so a large text cannot overflow them.
  for (long long off = 0; off < n; off += INT_MAX / 2) {
    int count = static_cast<int>(std::min<long long>(INT_MAX / 2, n - off));
    SAE_MPI_CHECK(MPI_Bcast(s.data() + off, count, MPI_CHAR, root, comm_));
  }
}

std::string MpiEnv::broadcast_from_root(const std::function<std::string()>& produce) const {
  std::string text;
  all_or_none([&] {
    if (rank_ == 0) text = produce();
  });
  broadcast_string(text, 0);
  return text;
}

namespace {
template <typename T>
void allreduce_chunked(T* data, int64_t n, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  constexpr int64_t kChunk = int64_t(1) << 28;
  for (int64_t off = 0; off < n; off += kChunk) {
    int count = static_cast<int>(std::min(kChunk, n - off));
    SAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, op, comm));
  }
}
}  // namespace

void MpiEnv::allreduce_sum(double* data, int64_t n) const {
  allreduce_chunked(data, n, MPI_DOUBLE, MPI_SUM, comm_);
}
void MpiEnv::allreduce_sum(int64_t* data, int64_t n) const {
  allreduce_chunked(data, n, MPI_INT64_T, MPI_SUM, comm_);
}
void MpiEnv::allreduce_sum(float* data, int64_t n) const {
  allreduce_chunked(data, n, MPI_FLOAT, MPI_SUM, comm_);
}
void MpiEnv::allreduce_sum(int32_t* data, int64_t n) const {
  allreduce_chunked(data, n, MPI_INT32_T, MPI_SUM, comm_);
}
void MpiEnv::allreduce_max(float* data, int64_t n) const {
  allreduce_chunked(data, n, MPI_FLOAT, MPI_MAX, comm_);
}
double MpiEnv::allreduce_sum(double v) const {
  allreduce_sum(&v, 1);
  return v;
}
int64_t MpiEnv::allreduce_sum(int64_t v) const {
  allreduce_sum(&v, 1);
  return v;
}
int MpiEnv::allreduce_max(int v) const {
  SAE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, comm_));
  return v;
}

std::vector<float> MpiEnv::allgather(const std::vector<float>& local) const {
  SAE_ASSERT(local.size() <= size_t(INT32_MAX), "allgather: too many values for one rank");
  const int n = int(local.size());
  std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_), 0);
  SAE_MPI_CHECK(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_));
  int64_t total = 0;
  for (int r = 0; r < size_; ++r) {
    SAE_ASSERT(total <= int64_t(INT32_MAX), "allgather: too many values in all");
    displs[size_t(r)] = int(total);
    total += counts[size_t(r)];
  }
  std::vector<float> out(static_cast<size_t>(total));
  SAE_MPI_CHECK(MPI_Allgatherv(local.data(), n, MPI_FLOAT, out.data(), counts.data(), displs.data(), MPI_FLOAT,
                               comm_));
  return out;
}

std::vector<char> MpiEnv::allgather_bytes(const void* data, int64_t bytes) const {
  SAE_ASSERT(bytes >= 0 && bytes <= int64_t(INT32_MAX), "allgather_bytes: too many bytes for one rank");
  std::vector<char> out(static_cast<size_t>(bytes * size_));
  SAE_MPI_CHECK(MPI_Allgather(data, int(bytes), MPI_BYTE, out.data(), int(bytes), MPI_BYTE, comm_));
  return out;
}

void abort_on_error(const MpiEnv& env, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const SaeError& e) {
    std::fprintf(stderr, "[rank %d@%s] %s:%d %s\n", env.rank(), env.host().c_str(), e.file(), e.line(), e.what());
    std::fflush(stderr);
    MPI_Abort(env.comm(), e.exit_code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d@%s] internal error: %s\n", env.rank(), env.host().c_str(), e.what());
    std::fflush(stderr);
    MPI_Abort(env.comm(), 1);
  }
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  // FUNNELED: reader threads do HDF5 I/O only; all MPI calls stay on the main thread.
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw SaeError(ErrorKind::Internal, "MPI_Init_thread failed");
  }
}
MpiSession::~MpiSession() { MPI_Finalize(); }

}  // namespace saepipe
