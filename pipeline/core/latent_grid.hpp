// The ranks of a latent-sharded stage as a grid ([resources.train] latent_shards = S):
// (ranks / S) data groups x S latent shards. The S ranks of a data group read the same rows
// and each holds one latent range of the dictionary; the ranks/S ranks of a shard column hold
// the same latents for different rows and sum their gradients, as data-parallel ranks do.
//
//   rank r: data group r / S, shard r % S (a data group's shards are neighbouring ranks, so on
//   a cluster they usually share a node: their per-step exchanges are the larger ones)
//   shard_group()  the S ranks of r's data group (MPI_Comm_split by r / S): row selections and
//                  reconstructions are exchanged here
//   data_group()   the ranks/S ranks holding r's latents (split by r % S): gradients summed here
// With S = 1 data_group() is the world itself and shard_group() this rank alone.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "pipeline/core/mpi_env.hpp"

namespace saepipe {

class LatentGrid {
 public:
  // Collective over `world`. The caller has checked that S divides world.size().
  LatentGrid(const MpiEnv& world, int shards);
  ~LatentGrid();
  LatentGrid(const LatentGrid&) = delete;
  LatentGrid& operator=(const LatentGrid&) = delete;

  int shards() const { return shards_; }
  int shard() const { return world_.rank() % shards_; }
  int data_groups() const { return world_.size() / shards_; }
  int data_group_index() const { return world_.rank() / shards_; }
  const MpiEnv& world() const { return world_; }
  const MpiEnv& data_group() const { return shards_ == 1 ? world_ : *data_; }
  const MpiEnv& shard_group() const { return *row_; }
  // "2 x 4 (data groups x latent shards)", for messages and the log.
  std::string describe() const;

 private:
  const MpiEnv& world_;
  int shards_;
  MPI_Comm data_comm_ = MPI_COMM_NULL, row_comm_ = MPI_COMM_NULL;
  std::unique_ptr<MpiEnv> data_, row_;
};

}  // namespace saepipe
