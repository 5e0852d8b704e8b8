// The SAE checkpoint sae.h5 (DESIGN.md "SAE checkpoint", schemas/sae.schema.json).
// Shapes: D d_in, O d_out (= D but for transcoders), F d_sae. Weights are float32 in the units
// of the raw activations.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/io/latent_part.hpp"

namespace saepipe {

class MpiEnv;

struct SaeCheckpoint {
  int64_t d_in = 0, d_sae = 0;
  int64_t d_sae_total = 0;  // read with a CheckpointRange: the file's d_sae (d_sae: the range's); else d_sae
  std::vector<float> W_enc;      // [D, F]
  std::vector<float> b_enc;      // [F]
  std::vector<float> W_dec;      // [F, O]
  std::vector<float> b_dec;      // [O]
  std::vector<float> threshold;  // [F] (JumpReLU); empty is written as zeros
  std::vector<float> r_mag, b_mag;  // [F] gated: magnitude path exp(r_mag) (W_enc^T xc) + b_mag; b_enc is b_gate
  std::vector<float> W_skip;        // [O, D] skip transcoders: x_hat += W_skip x; empty otherwise
  // Transcoders: d_out and the hook reconstructed (x is read from `hook`, not centred by b_dec).
  // Crosscoders: `hooks` (layers > 1), whose rows side by side are the input and the output.
  int64_t d_out = 0, layers = 1;  // d_out 0: d_in
  bool transcoder = false;
  std::string target_hook;
  std::vector<std::string> hooks;
  std::string architecture, hook, resolved_job, store;
  // What determined these weights (train settings, seed, store); a re-run with the same
  // fingerprint finds the checkpoint complete. May be absent ("") in checkpoints from elsewhere.
  std::string fingerprint;
  int64_t k = 0, tokens_seen = 0, step = 0, heldout_first_token = 0, heldout_n_tokens = 0;
};

// Datasets /W_enc /b_enc /W_dec /b_dec /threshold (float32, chunked, Fletcher32), with /r_mag
// /b_mag (gated) and /W_skip (skip transcoders); root attributes schema = "saepipe.sae",
// version = 1, architecture, k, d_in, d_sae, hook, tokens_seen, step, store, heldout_first_token,
// heldout_n_tokens, resolved_job, and for transcoders and crosscoders d_out, transcoder,
// target_hook, layers, hooks (a JSON array). Written to path + ".tmp", renamed.
void write_sae_checkpoint(const std::string& path, const SaeCheckpoint& checkpoint);

// The same file written collectively by every rank of `env` with parallel HDF5 (latent
// sharding): `checkpoint` holds this rank's latents (d_sae = part.count: W_enc [D, count],
// W_dec [count, O], ...) and b_dec; the file holds part.total latents. Every other field (the
// attributes) must be the same on every rank. An HDF5 failure on one rank ends the run
// (abort_on_error); a failed rename is a user error on every rank.
void write_sae_checkpoint_collective(const std::string& path, const SaeCheckpoint& checkpoint, const LatentPart& part,
                                     const MpiEnv& env);

// The attribute 'fingerprint' alone ("" when absent): is a finished checkpoint this job's?
std::string read_sae_fingerprint(const std::string& path);

// Checks schema, version and shapes (user error naming the file and the dataset or attribute);
// a failed read or a NaN/Inf weight is a corrupt error. store and heldout_* may be absent
// (checkpoints made elsewhere): they read as "" and 0; so may the transcoder and crosscoder
// attributes (an SAE).
// A CheckpointRange reads latents [first, first + count) only (latent shards): the columns of W_enc,
// the rows of W_dec and those of b_enc, threshold, r_mag, b_mag; b_dec whole; d_sae = count and
// d_sae_total = the file's. count < 0 (or no range): every latent.
struct CheckpointRange {
  int64_t first = 0, count = -1;
};
SaeCheckpoint read_sae_checkpoint(const std::string& path, const CheckpointRange* range = nullptr);

}  // namespace saepipe
