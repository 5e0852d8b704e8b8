// The saelens/ export beside sae.h5 (DESIGN.md "SAE checkpoint"): cfg.json and
// sae_weights.safetensors exactly as SAELens 6.x's `save_model` writes them, so
// `SAE.load_from_disk("runs/<name>/sae/saelens")` loads the weights and keeps the metadata
// (ActivationsStore.from_sae, the evals and HookedSAETransformer read metadata.hook_name ...).
//   topk -> architecture "topk" (k, rescale_acts_by_decoder_norm false); relu -> "standard";
//   jumprelu, batchtopk and matryoshka -> "jumprelu" (batchtopk and matryoshka infer with their
//   threshold, as SAELens saves its own BatchTopK and MatryoshkaBatchTopK SAEs); gated ->
//   "gated" (b_enc saved as b_gate, with r_mag and b_mag).
//   Transcoders: relu -> "transcoder", the threshold rules -> "jumprelu_transcoder" ("skip_" before
//   "transcoder" with W_skip [d_out, d_in]); apply_b_dec_to_input false, d_out after metadata,
//   metadata.hook_name_out the target hook. TopK and gated transcoders and crosscoders have no
//   SAELens class: no export (sae.h5 holds them, schemas/sae.schema.json).
// cfg.json: the config dataclass' fields in order (d_in, d_sae, dtype, device,
// apply_b_dec_to_input, normalize_activations, reshape_activations, metadata, then the
// architecture's own fields) and "architecture" last; "metadata" holds sae_lens_version (a v6
// version, without which SAELens converts the file as pre-6.0 and drops the metadata),
// hook_name, hook_head_index, model_name, context_size, prepend_bos, seqpos_slice, dataset_path,
// ... taken from the store's manifest (schemas/sae.schema.json lists them).
// Tensors (float32, little-endian): W_dec [d_sae, d_in], W_enc [d_in, d_sae], b_dec [d_in],
// b_enc [d_sae], and threshold [d_sae] for "jumprelu". Weights are in raw units
// (normalize_activations "none"). Written into saelens.tmp/ and renamed.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/io/activation_store.hpp"
#include "pipeline/io/checkpoint.hpp"

namespace saepipe {

// The SAELens version whose save_model layout the export follows.
inline constexpr const char* kSaeLensFormatVersion = "6.54.12";

// SAELens' architecture name for the checkpoint, "" when SAELens has none (no export).
std::string saelens_architecture(const SaeCheckpoint& c);

// cfg.json for a checkpoint trained on the store described by `store` (its manifest).
nlohmann::ordered_json saelens_config(const SaeCheckpoint& c, const StoreManifest& store);

void write_saelens_export(const std::string& dir, const SaeCheckpoint& c, const StoreManifest& store);

// safetensors: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, raw data.
struct SafeTensor {
  std::string name;
  std::vector<int64_t> shape;
  const std::vector<float>* data;
};
void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors);

}  // namespace saepipe
