// Where a harvest's activations come from. The shard loop (harvest.cpp) is the same for every
// source: it asks for the rows of whole sequences and writes them. Sources: synthetic (toy
// model of superposition) and model (a transformer run on a token file).
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace saepipe {

class Backend;
struct Job;
struct ShardData;

class ActivationSource {
 public:
  virtual ~ActivationSource() = default;
  virtual int64_t d_model() const = 0;
  // Rows stored per sequence (the manifest's "context"): harvest.context, less one when the
  // BOS position is excluded.
  virtual int64_t rows_per_sequence() const = 0;
  // Everything that determines the store's content: the manifest's "source" and the fingerprint.
  virtual nlohmann::json description() const = 0;
  // Checks the inputs of sequences [first_seq, first_seq + n_seq) (every rank checks its own,
  // under MpiEnv::all_or_none, before any shard is written).
  virtual void check_sequences(int64_t first_seq, int64_t n_seq) const { (void)first_seq, (void)n_seq; }
  // Fills every field of `data` for sequences [first_seq, first_seq + n_seq). Must not call
  // HDF5: shards are written by another thread meanwhile.
  virtual void fill(int64_t first_seq, int64_t n_seq, ShardData& data) const = 0;
  // Rank 0, once every shard is written: files beside the store (the synthetic ground truth).
  virtual void finish_store(const std::string& store_dir) const { (void)store_dir; }
};

// The source harvest.source names; user errors (every rank alike) for bad inputs. A model
// source runs the transformer the backend loads (on its device).
std::unique_ptr<ActivationSource> make_activation_source(const Job& job, const Backend& backend);
std::unique_ptr<ActivationSource> make_synthetic_source(const Job& job);
std::unique_ptr<ActivationSource> make_model_source(const Job& job, const Backend& backend);

}  // namespace saepipe
