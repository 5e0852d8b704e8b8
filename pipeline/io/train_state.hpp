// The training state beside sae.h5 (DESIGN.md "Resume"): everything the next step depends
// on, so a run resumed from it ends bit-identical to an uninterrupted one. The data cursor
// and every random choice are functions of (seed, step), so `step` is the cursor.
//
// File train_state.h5: /params, /adam_m, /adam_v [P] float32 (P = SaeParams::size_for),
// /since_fired [F] int64; attributes schema = "saepipe.train_state", version = 1, step,
// adam_t, d_in, d_sae, fingerprint, input_scale, threshold_ema (batchtopk), threshold_weight,
// sparsity_log_scale (relu/jumprelu/gated with train.target_l0; absent in older files: 0),
// and the dictionary's kind: d_out, transcoder, skip, gated, layers (absent: an SAE, as the
// files written before them).
// Written to path + ".tmp" and renamed, so a kill leaves the previous state intact.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/io/latent_part.hpp"

namespace saepipe {

class MpiEnv;

struct TrainState {
  std::string fingerprint;  // of the job settings that produced it; resume requires a match
  int64_t step = 0;         // steps completed
  int64_t d_in = 0, d_sae = 0, adam_t = 0;
  // The dictionary's kind (SaeShape): d_out 0 means d_in.
  int64_t d_out = 0, layers = 1;
  bool transcoder = false, skip = false, gated = false;
  std::vector<float> params, adam_m, adam_v;  // [P]
  std::vector<int64_t> since_fired;           // [F] tokens since each latent last fired
  double input_scale = 1.0;
  double threshold_ema = 0.0, threshold_weight = 0.0;  // bias-corrected EMA = ema / weight
  double sparsity_log_scale = 0.0;  // log of the factor on l1_coef / l0_coef (target_l0)
};

void write_train_state(const std::string& path, const TrainState& s);
// The same file written collectively by every rank of `env` with parallel HDF5 (latent
// sharding): params, adam_m and adam_v hold this rank's part (the layout of SaeParams with
// part.count latents, b_dec whole; s.params and the moments are not read), s.since_fired every
// latent's; the other fields of s the same on every rank. An HDF5 failure on one rank ends the
// run (abort_on_error); a failed rename is a user error on every rank.
void write_train_state_collective(const std::string& path, const TrainState& s, const float* params,
                                  const float* adam_m, const float* adam_v, const LatentPart& part, const MpiEnv& env);
// User error naming the file when the schema/version or shapes do not match; corrupt error
// when a read fails (checksum).
TrainState read_train_state(const std::string& path);
// Everything but params, adam_m and adam_v (left empty).
TrainState read_train_state_header(const std::string& path);
// Reads part's latents of params, adam_m and adam_v (the layout of SaeParams with part.count
// latents, b_dec whole) into s, whose other fields read_train_state_header filled: a rank of a
// latent grid reads its own range, on any grid, of a file that holds the whole dictionary.
void read_train_state_part(const std::string& path, TrainState& s, const LatentPart& part);

}  // namespace saepipe
