// interpret/neuronpedia/: the latents in the batch format of SAEDashboard's NeuronpediaRunner
// (its NeuronpediaDashboardBatch / Feature / Activation classes: exactly their keys, so a batch
// round-trips through them unchanged), which Neuronpedia's importer (neuronpedia-utils
// convert-saedashboard-to-neuronpedia-export.py) reads from every batch-*.json of a directory.
// Fields saepipe has no data for are present and empty (the importer indexes them).
// The batch format has no place for decoder neighbours, and the importer sets Neuronpedia's
// topkCosSimIndices/Values to [] and maxActApprox to the largest rounded example value; so
// feature-extras-<i>.json (a name the importer skips) holds those fields of Neuronpedia's
// feature rows, by latent. Layouts: schemas/neuronpedia_batch.schema.json,
// schemas/neuronpedia_extras.schema.json.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/interpret/site_data.hpp"

namespace saepipe {

struct NeuronpediaMeta {
  std::string model_id;         // Neuronpedia model id (e.g. "gpt2-small")
  std::string sae_set;          // the source set (e.g. "res-saepipe")
  int64_t layer = 0;
  std::string dataset;          // where the prompts came from (the token file)
  int64_t n_tokens_in_prompt = 0;  // the store's context
  int64_t n_prompts_total = 0;     // held-out tokens / context
};

// Latents [first, last) as one batch object.
nlohmann::json neuronpedia_batch(const SiteData& site, int64_t first, int64_t last, const NeuronpediaMeta& meta);
// The same latents' Neuronpedia feature-row fields the batch format cannot carry: index,
// maxActApprox (the max activation, unrounded), topkCosSimIndices/Values (decoder neighbours).
nlohmann::json neuronpedia_feature_extras(const SiteData& site, int64_t first, int64_t last,
                                          const NeuronpediaMeta& meta);

}  // namespace saepipe
