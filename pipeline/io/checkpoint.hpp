// The SAE checkpoint sae.h5 (DESIGN.md "SAE checkpoint", schemas/sae.schema.json).
// Shapes: D d_in, F d_sae. Weights are float32 in the units of the raw activations.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace saepipe {

struct SaeCheckpoint {
  int64_t d_in = 0, d_sae = 0;
  std::vector<float> W_enc;      // [D, F]
  std::vector<float> b_enc;      // [F]
  std::vector<float> W_dec;      // [F, D]
  std::vector<float> b_dec;      // [D]
  std::vector<float> threshold;  // [F] (JumpReLU); empty is written as zeros
  std::string architecture, hook, resolved_job, store;
  // What determined these weights (train settings, seed, store); a re-run with the same
  // fingerprint finds the checkpoint complete. May be absent ("") in checkpoints from elsewhere.
  std::string fingerprint;
  int64_t k = 0, tokens_seen = 0, step = 0, heldout_first_token = 0, heldout_n_tokens = 0;
};

// Datasets /W_enc /b_enc /W_dec /b_dec /threshold (float32, chunked, Fletcher32); root attributes
// schema = "saepipe.sae", version = 1, architecture, k, d_in, d_sae, hook, tokens_seen, step,
// store, heldout_first_token, heldout_n_tokens, resolved_job. Written to path + ".tmp", renamed.
void write_sae_checkpoint(const std::string& path, const SaeCheckpoint& checkpoint);

// Checks schema, version and shapes (user error naming the file and the dataset or attribute);
// a failed read or a NaN/Inf weight is a corrupt error. store and heldout_* may be absent
// (checkpoints made elsewhere): they read as "" and 0.
SaeCheckpoint read_sae_checkpoint(const std::string& path);

}  // namespace saepipe
