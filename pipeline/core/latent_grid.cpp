// The data x latent grid of ranks (latent_grid.hpp).
#include "pipeline/core/latent_grid.hpp"

#include <string>

#include "pipeline/core/errors.hpp"

namespace saepipe {

LatentGrid::LatentGrid(const MpiEnv& world, int shards) : world_(world), shards_(shards) {
  SAE_ASSERT(shards >= 1 && world.size() % shards == 0, "latent shards must divide the ranks");
  const int r = world.rank();
  SAE_MPI_CHECK(MPI_Comm_split(world.comm(), r / shards, r, &row_comm_));
  row_ = std::make_unique<MpiEnv>(row_comm_);
  if (shards > 1) {
    SAE_MPI_CHECK(MPI_Comm_split(world.comm(), r % shards, r, &data_comm_));
    data_ = std::make_unique<MpiEnv>(data_comm_);
  }
}

LatentGrid::~LatentGrid() {
  data_.reset();
  row_.reset();
  if (data_comm_ != MPI_COMM_NULL) MPI_Comm_free(&data_comm_);
  if (row_comm_ != MPI_COMM_NULL) MPI_Comm_free(&row_comm_);
}

std::string LatentGrid::describe() const {
  return std::to_string(data_groups()) + " x " + std::to_string(shards_) + " (data groups x latent shards)";
}

}  // namespace saepipe
