// The saelens/ export beside sae.h5 (DESIGN.md "SAE checkpoint"): cfg.json and
// sae_weights.safetensors in SAELens v6's layout and field names, so
// `SAE.load_from_disk("runs/<name>/sae/saelens")` loads it.
//   topk -> architecture "topk" (k); relu -> "standard"; jumprelu and batchtopk -> "jumprelu"
//   (batchtopk infers with its threshold, as SAELens saves it).
// Tensors (float32, little-endian): W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
// b_dec [d_in], and threshold [d_sae] for "jumprelu". Weights are in raw units
// (normalize_activations "none"). Written into saelens.tmp/ and renamed.
#pragma once
#include <string>

#include "pipeline/io/checkpoint.hpp"

namespace saepipe {

void write_saelens_export(const std::string& dir, const SaeCheckpoint& c, int64_t context_size);

// safetensors: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, raw data.
struct SafeTensor {
  std::string name;
  std::vector<int64_t> shape;
  const std::vector<float>* data;
};
void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors);

}  // namespace saepipe
