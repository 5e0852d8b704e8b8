// SAEs saved by SAELens (a directory with cfg.json + sae_weights.safetensors, as `save_model`,
// `save_inference_model` or a training run's output write it) as saepipe checkpoints, so the
// stats stage evaluates them wherever it takes an sae.h5 (`[stats] sae = "<dir>"`).
// SAELens' conventions are converted exactly (in real arithmetic):
//   architecture "topk" -> topk (k), "standard" -> relu, "jumprelu" -> jumprelu (threshold);
//   apply_b_dec_to_input false: pre = x W_enc + b_enc, so b_enc += b_dec W_enc;
//   topk rescale_acts_by_decoder_norm: decoder norms folded in (W_enc[:, i] *= n_i,
//     b_enc[i] *= n_i, W_dec[i] /= n_i), the fold SAELens itself does on save;
//   jumprelu: z = relu(pre) * (pre > threshold), so a negative threshold acts as 0;
//   weights F32, F16, BF16 or F64, read as float32.
//   The hook is metadata.hook_name (top-level hook_name / hook_point in pre-6.0 files).
// What saepipe cannot evaluate is a user error naming cfg.json and the key: other
// architectures (gated, transcoders, ...), normalize_activations other than "none" (a per-token
// norm, or a dataset scale factor cfg.json does not hold), reshape_activations "hook_z", a
// missing hook name, tensors of the wrong shape, non-finite weights (corrupt).
#pragma once
#include <string>

#include "pipeline/io/checkpoint.hpp"

namespace saepipe {

// True when `path` is a directory holding cfg.json and sae_weights.safetensors.
bool is_saelens_dir(const std::string& path);

// The SAE of a SAELens directory, with architecture, k, hook and d_in/d_sae filled; store and
// the held-out split are empty (an SAE trained elsewhere); fingerprint identifies cfg.json and
// the weights.
SaeCheckpoint read_saelens_sae(const std::string& dir);

// An sae.h5 (read_sae_checkpoint) or a SAELens directory (read_saelens_sae).
SaeCheckpoint read_sae_for_evaluation(const std::string& path);

}  // namespace saepipe
