// interpret/neuronpedia/batch-<i>.json: the latents in the JSON that SAEDashboard's
// NeuronpediaRunner writes and Neuronpedia's importer
// (neuronpedia-utils convert-saedashboard-to-neuronpedia-export.py) reads. Layout:
// schemas/neuronpedia_batch.schema.json. Fields saepipe has no data for are present and empty
// (the importer indexes them); decoder neighbours go to Neuronpedia's topkCosSimIndices/Values.
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

}  // namespace saepipe
